//! Optimistic locking: version-checked updates and deletes, the conflict
//! error, and retrying with backoff.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::backend::Backend;
use diesel::connection::Connection;
use diesel::query_builder::{AsChangeset, AstPass, Query, QueryFragment, QueryId};
use diesel::query_source::{Column, QuerySource, Table};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType};
use diesel::{QueryResult, RunQueryDsl};

/// The `FROM` clause of a versioned model's table.
#[doc(hidden)]
pub type From<M> = <<M as Versioned>::Table as QuerySource>::FromClause;

/// A version number: `i32` or `i64`.
pub trait VersionNumber: Copy + fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The next version; wraps around at the type's maximum.
    fn next(self) -> Self;
    /// Widened, for error reports.
    fn as_i64(self) -> i64;
}

impl VersionNumber for i32 {
    fn next(self) -> Self {
        self.wrapping_add(1)
    }
    fn as_i64(self) -> i64 {
        i64::from(self)
    }
}

impl VersionNumber for i64 {
    fn next(self) -> Self {
        self.wrapping_add(1)
    }
    fn as_i64(self) -> i64 {
        self
    }
}

/// Why a version-checked write did not happen.
///
/// ```
/// use manna_diesel::OptimisticLockError;
/// let err = OptimisticLockError::Conflict { table: "plaid_items", id: "42".into(), expected_version: 3 };
/// assert!(err.to_string().contains("reload the row"));
/// assert!(err.is_conflict());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptimisticLockError {
    /// The row exists but its version is no longer the one this copy was
    /// loaded with: someone else wrote it first. Nothing was written.
    #[error(
        "optimistic lock conflict on {table} id {id}: expected version {expected_version}, but the row \
         was changed by someone else; reload the row, reapply the change and try again \
         (or use manna_diesel::retry_on_conflict)"
    )]
    Conflict {
        /// The table.
        table: &'static str,
        /// The primary key, as `Debug` prints it.
        id: String,
        /// The version this copy holds.
        expected_version: i64,
    },
    /// The row no longer exists (deleted by someone else). Nothing was written.
    #[error("{table} id {id} no longer exists; it was deleted by someone else")]
    NotFound {
        /// The table.
        table: &'static str,
        /// The primary key, as `Debug` prints it.
        id: String,
    },
    /// The database reported an error.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

impl OptimisticLockError {
    /// True for [`OptimisticLockError::Conflict`], the error
    /// [`retry_on_conflict`] retries.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

/// A Diesel model whose rows carry a version column. Implemented by
/// `#[derive(Versioned)]`; see its documentation.
pub trait Versioned: Sized {
    /// The model's table.
    type Table: Table + QuerySource + Default;
    /// The version column.
    type VersionColumn: Column<Table = Self::Table>;
    /// `i32` or `i64`.
    type Version: VersionNumber;
    /// The `WHERE` expression selecting this row by primary key.
    type Key;

    /// The table's name, for error reports.
    const TABLE_NAME: &'static str;

    /// The expression selecting this row by its primary key.
    fn key(&self) -> Self::Key;
    /// The primary key for error reports.
    fn key_description(&self) -> String;
    /// The version this copy was loaded with (or last wrote).
    fn version(&self) -> Self::Version;
    /// Sets the in-memory version. The lock methods call it after the
    /// database confirmed a write; application code rarely needs it.
    fn set_version(&mut self, version: Self::Version);

    /// Bumps the in-memory version by one (the name of the seed API). The
    /// lock methods do this themselves, only after a confirmed write.
    fn increment_version(&mut self) {
        let next = self.version().next();
        self.set_version(next);
    }

    /// `UPDATE <table> SET <changes>, <version> = v + 1 WHERE <key> AND <version> = v`,
    /// one statement. On success `self`'s version becomes `v + 1`; on any
    /// error `self` is unchanged.
    ///
    /// Zero rows matched: [`OptimisticLockError::Conflict`], or
    /// [`OptimisticLockError::NotFound`] when the row is gone (one extra
    /// query, only on that path).
    fn update_with_lock<C, Ch>(
        &mut self,
        conn: &mut C,
        changes: Ch,
    ) -> Result<(), OptimisticLockError>
    where
        C: Connection,
        Ch: AsChangeset<Target = Self::Table>,
        LockedUpdate<From<Self>, Self::Key, Self::VersionColumn, Ch::Changeset, Self::Version>:
            QueryFragment<C::Backend> + QueryId,
        C: RowCounter<Self>,
    {
        let (expected, next) = (self.version(), self.version().next());
        let rows = locked_update(self, changes.as_changeset(), None::<()>, expected, true)
            .execute(conn)?;
        finish(self, conn, rows, expected, next)
    }

    /// Like [`update_with_lock`](Versioned::update_with_lock), with one more
    /// condition in the `WHERE` clause: `... AND <version> = v AND (condition)`.
    /// For fencing tokens from `manna-lock`:
    /// `item.update_with_lock_if(conn, changes, items::fence.le(token))`.
    /// A row that fails the condition reports [`OptimisticLockError::Conflict`].
    fn update_with_lock_if<C, Ch, X>(
        &mut self,
        conn: &mut C,
        changes: Ch,
        condition: X,
    ) -> Result<(), OptimisticLockError>
    where
        C: Connection,
        Ch: AsChangeset<Target = Self::Table>,
        X: diesel::Expression<SqlType = diesel::sql_types::Bool>
            + diesel::AppearsOnTable<Self::Table>,
        LockedUpdate<From<Self>, Self::Key, Self::VersionColumn, Ch::Changeset, Self::Version, X>:
            QueryFragment<C::Backend> + QueryId,
        C: RowCounter<Self>,
    {
        let (expected, next) = (self.version(), self.version().next());
        let rows = locked_update(
            self,
            changes.as_changeset(),
            Some(condition),
            expected,
            true,
        )
        .execute(conn)?;
        finish(self, conn, rows, expected, next)
    }

    /// Writes every column of `self` (its `AsChangeset`), with the version
    /// checked and bumped, in one statement. The model's changeset already
    /// assigns the version column, so the new version goes in as that value
    /// (`v + 1`, guarded by `WHERE <version> = v`). On error `self` is unchanged.
    fn save_with_lock<C>(&mut self, conn: &mut C) -> Result<(), OptimisticLockError>
    where
        C: Connection,
        for<'a> &'a Self: AsChangeset<Target = Self::Table>,
        for<'a> LockedUpdate<
            From<Self>,
            Self::Key,
            Self::VersionColumn,
            <&'a Self as AsChangeset>::Changeset,
            Self::Version,
        >: QueryFragment<C::Backend> + QueryId,
        C: RowCounter<Self>,
    {
        let expected = self.version();
        let next = expected.next();
        // The changeset reads the version from `self`: put the new one in for
        // the statement, and put the old one back unless the write is confirmed.
        self.set_version(next);
        let rows = locked_update(&*self, (&*self).as_changeset(), None::<()>, expected, false)
            .execute(conn);
        self.set_version(expected);
        finish(self, conn, rows?, expected, next)
    }

    /// `DELETE FROM <table> WHERE <key> AND <version> = v`, one statement.
    /// A stale version is [`OptimisticLockError::Conflict`] and deletes
    /// nothing: reload, decide again, and retry.
    fn delete_with_lock<C>(&self, conn: &mut C) -> Result<(), OptimisticLockError>
    where
        C: Connection,
        LockedDelete<From<Self>, Self::Key, Self::VersionColumn, Self::Version>:
            QueryFragment<C::Backend> + QueryId,
        C: RowCounter<Self>,
    {
        let expected = self.version();
        let query = LockedDelete {
            from: Self::Table::default().from_clause(),
            key: self.key(),
            version: std::marker::PhantomData,
            expected,
        };
        match query.execute(conn)? {
            1 => Ok(()),
            0 => Err(zero_rows(self, conn, expected)?),
            n => Err(unexpected_rows::<Self>(n)),
        }
    }
}

/// The update statement for `model`: guarded by its key and `expected`,
/// setting the version to the next one when `set_version` (the model's own
/// changeset already does otherwise).
fn locked_update<M: Versioned, Ch, X>(
    model: &M,
    changes: Ch,
    condition: Option<X>,
    expected: M::Version,
    set_version: bool,
) -> LockedUpdate<From<M>, M::Key, M::VersionColumn, Ch, M::Version, X> {
    LockedUpdate {
        from: M::Table::default().from_clause(),
        key: model.key(),
        condition,
        version: std::marker::PhantomData,
        changes: Some(changes),
        set_version,
        expected,
        next: expected.next(),
    }
}

fn finish<M, C>(
    model: &mut M,
    conn: &mut C,
    rows: usize,
    expected: M::Version,
    next: M::Version,
) -> Result<(), OptimisticLockError>
where
    M: Versioned,
    C: RowCounter<M>,
{
    match rows {
        1 => {
            model.set_version(next);
            Ok(())
        }
        0 => Err(zero_rows(model, conn, expected)?),
        n => Err(unexpected_rows::<M>(n)),
    }
}

/// After a write matched no row: tell a conflict from a deleted row.
fn zero_rows<M, C>(
    model: &M,
    conn: &mut C,
    expected: M::Version,
) -> Result<OptimisticLockError, OptimisticLockError>
where
    M: Versioned,
    C: RowCounter<M>,
{
    let count = conn.count_rows(model)?;
    let id = model.key_description();
    if count == 0 {
        tracing::debug!(table = M::TABLE_NAME, id = %id, "optimistic lock: row not found");
        return Ok(OptimisticLockError::NotFound {
            table: M::TABLE_NAME,
            id,
        });
    }
    CONFLICTS.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        table = M::TABLE_NAME,
        id = %id,
        expected_version = expected.as_i64(),
        "optimistic lock conflict"
    );
    Ok(OptimisticLockError::Conflict {
        table: M::TABLE_NAME,
        id,
        expected_version: expected.as_i64(),
    })
}

fn unexpected_rows<M: Versioned>(n: usize) -> OptimisticLockError {
    // More than one row for one primary key means the key is not unique.
    OptimisticLockError::Database(diesel::result::Error::QueryBuilderError(
        format!(
            "version-checked write on {} matched {n} rows; the primary key does not identify one row",
            M::TABLE_NAME
        )
        .into(),
    ))
}

/// `UPDATE t SET <changes>[, v = $next] WHERE <key> AND v = $expected`.
///
/// A query node of its own: Diesel's `UpdateStatement` cannot take a filter
/// in generic code (its `AllowFilterForUpdate` bound is sealed).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct LockedUpdate<F, K, V, Ch, N, X = ()> {
    from: F,
    key: K,
    condition: Option<X>,
    version: std::marker::PhantomData<V>,
    changes: Option<Ch>,
    set_version: bool,
    expected: N,
    next: N,
}

impl<F, K, V, Ch, N, X, DB> QueryFragment<DB> for LockedUpdate<F, K, V, Ch, N, X>
where
    DB: Backend + HasSqlType<V::SqlType>,
    F: QueryFragment<DB>,
    K: QueryFragment<DB>,
    X: QueryFragment<DB>,
    V: Column,
    Ch: QueryFragment<DB>,
    N: ToSql<V::SqlType, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        let mut first = true;
        if let Some(changes) = &self.changes {
            if !changes.is_noop(out.backend())? {
                changes.walk_ast(out.reborrow())?;
                first = false;
            }
        }
        if self.set_version || first {
            if !first {
                out.push_sql(", ");
            }
            out.push_identifier(V::NAME)?;
            out.push_sql(" = ");
            out.push_bind_param::<V::SqlType, N>(&self.next)?;
        }
        out.push_sql(" WHERE ");
        self.key.walk_ast(out.reborrow())?;
        out.push_sql(" AND ");
        out.push_identifier(V::NAME)?;
        out.push_sql(" = ");
        out.push_bind_param::<V::SqlType, N>(&self.expected)?;
        if let Some(condition) = &self.condition {
            out.push_sql(" AND (");
            condition.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        Ok(())
    }
}

// Like Diesel's own `UpdateStatement`: no static query id, so prepared
// statements are cached by their SQL text.
impl<F, K, V, Ch, N, X> QueryId for LockedUpdate<F, K, V, Ch, N, X> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, K, V, Ch, N, X, C> RunQueryDsl<C> for LockedUpdate<F, K, V, Ch, N, X> {}

/// `DELETE FROM t WHERE <key> AND v = $expected`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct LockedDelete<F, K, V, N> {
    from: F,
    key: K,
    version: std::marker::PhantomData<V>,
    expected: N,
}

impl<F, K, V, N, DB> QueryFragment<DB> for LockedDelete<F, K, V, N>
where
    DB: Backend + HasSqlType<V::SqlType>,
    F: QueryFragment<DB>,
    K: QueryFragment<DB>,
    V: Column,
    N: ToSql<V::SqlType, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("DELETE FROM ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.key.walk_ast(out.reborrow())?;
        out.push_sql(" AND ");
        out.push_identifier(V::NAME)?;
        out.push_sql(" = ");
        out.push_bind_param::<V::SqlType, N>(&self.expected)?;
        Ok(())
    }
}

impl<F, K, V, N> QueryId for LockedDelete<F, K, V, N> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, K, V, N, C> RunQueryDsl<C> for LockedDelete<F, K, V, N> {}

/// A connection that can count a versioned model's row by key: what the
/// lock methods need, besides running their statement, to tell a conflict
/// from a deleted row. Implemented for every Diesel connection that can load.
#[doc(hidden)]
pub trait RowCounter<M: Versioned>: Connection {
    /// `SELECT COUNT(*) FROM <table> WHERE <key of model>`.
    fn count_rows(&mut self, model: &M) -> QueryResult<i64>;
}

impl<M, C> RowCounter<M> for C
where
    M: Versioned,
    C: Connection + diesel::connection::LoadConnection,
    CountRows<From<M>, M::Key>: QueryFragment<C::Backend> + QueryId,
    C::Backend: HasSqlType<BigInt> + 'static,
    i64: diesel::deserialize::FromSql<BigInt, C::Backend>,
{
    fn count_rows(&mut self, model: &M) -> QueryResult<i64> {
        CountRows {
            from: M::Table::default().from_clause(),
            key: model.key(),
        }
        .get_result(self)
    }
}

/// `SELECT COUNT(*) FROM t WHERE <key>`: tells a conflict from a deleted row.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct CountRows<F, K> {
    from: F,
    key: K,
}

impl<F, K, DB> QueryFragment<DB> for CountRows<F, K>
where
    DB: Backend,
    F: QueryFragment<DB>,
    K: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT COUNT(*) FROM ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.key.walk_ast(out.reborrow())?;
        Ok(())
    }
}

impl<F, K> QueryId for CountRows<F, K> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, K> Query for CountRows<F, K> {
    type SqlType = BigInt;
}

impl<F, K, C> RunQueryDsl<C> for CountRows<F, K> {}

// ---------------------------------------------------------------------------
// Retry

/// How [`retry_on_conflict`] retries: exponential backoff with full jitter.
///
/// Attempt `n` (from 0) that ends in a conflict sleeps a uniformly random
/// time in `[0, min(max_delay, base_delay * 2^n)]` before the next attempt.
///
/// Defaults: `base_delay` 10 ms, `max_delay` 1 s, `max_attempts` 10.
///
/// ```
/// use std::time::Duration;
/// use manna_diesel::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .base_delay(Duration::from_millis(5))
///     .max_delay(Duration::from_millis(200))
///     .max_attempts(20);
/// assert_eq!(policy.get_max_attempts(), 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    base_delay: Duration,
    max_delay: Duration,
    max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The first backoff's upper bound (default 10 ms).
    #[must_use]
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The cap on any one backoff (default 1 s).
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Attempts in all, the first included (default 10; at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The configured number of attempts.
    ///
    /// ```
    /// assert_eq!(manna_diesel::RetryPolicy::default().get_max_attempts(), 10);
    /// ```
    pub fn get_max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff after attempt `attempt` (from 0), with full jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = manna_diesel::RetryPolicy::default();
    /// assert!(p.backoff(0) <= Duration::from_millis(10));
    /// assert!(p.backoff(30) <= Duration::from_secs(1));
    /// ```
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        let random = getrandom::u64().unwrap_or(nanos / 2);
        Duration::from_nanos(random % (nanos + 1))
    }

    /// Runs `attempt` until it succeeds or fails with an error that
    /// `retryable` refuses. A retryable failure is tried again after
    /// `backoff(n - 1)` (`n` counts the failures), calling `on_retry(n,
    /// &err, pause)` first, until `max_attempts` attempts were made; then
    /// that failure is returned. Behind [`retry_on_conflict`] and the
    /// re-encryption engine's batch writes.
    pub(crate) fn retry<T, E>(
        &self,
        mut attempt: impl FnMut() -> Result<T, E>,
        retryable: impl Fn(&E) -> bool,
        mut on_retry: impl FnMut(u32, &E, Duration),
    ) -> Result<T, E> {
        let mut failures = 0;
        loop {
            match attempt() {
                Err(err) if retryable(&err) && failures + 1 < self.max_attempts => {
                    failures += 1;
                    let pause = self.backoff(failures - 1);
                    on_retry(failures, &err, pause);
                    std::thread::sleep(pause);
                }
                other => return other,
            }
        }
    }
}

static CONFLICTS: AtomicU64 = AtomicU64::new(0);
static RETRIES: AtomicU64 = AtomicU64::new(0);
static EXHAUSTED: AtomicU64 = AtomicU64::new(0);

/// Process-wide counts of optimistic-locking outcomes, for metrics.
///
/// Each conflict also emits a `tracing` event (`INFO`, fields `table`, `id`,
/// `expected_version`); each retry a `DEBUG` event (`attempt`, `backoff_ms`);
/// running out of attempts a `WARN` event.
///
/// ```
/// let stats = manna_diesel::lock_stats();
/// assert!(stats.retries <= stats.conflicts + stats.retries);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LockStats {
    /// Version-checked writes that found the row changed.
    pub conflicts: u64,
    /// Attempts [`retry_on_conflict`] made after a conflict.
    pub retries: u64,
    /// Calls of [`retry_on_conflict`] that ran out of attempts.
    pub exhausted: u64,
}

/// Reads the counters of [`LockStats`].
pub fn lock_stats() -> LockStats {
    LockStats {
        conflicts: CONFLICTS.load(Ordering::Relaxed),
        retries: RETRIES.load(Ordering::Relaxed),
        exhausted: EXHAUSTED.load(Ordering::Relaxed),
    }
}

/// Runs `attempt` until it succeeds, fails with something other than a
/// conflict, or `policy`'s attempts run out (then the last conflict is
/// returned). Sleeps between attempts with exponential backoff and full
/// jitter.
///
/// Each attempt must **reload** the row, reapply the change and write it
/// with a `*_with_lock` method: retrying a write with the same stale
/// version can only conflict again.
///
/// # Transactions
///
/// Call it outside a transaction, and if an attempt needs one, open it
/// inside the closure (`conn.transaction(|conn| ...)`), so each attempt
/// starts a fresh transaction. Inside an enclosing `REPEATABLE READ` or
/// `SERIALIZABLE` transaction (and in MySQL's default, `REPEATABLE READ`),
/// the reload sees the same snapshot every time and every retry conflicts
/// again; the sleeps would also hold that transaction's locks.
///
/// ```no_run
/// # use diesel::prelude::*;
/// # use manna_diesel::{retry_on_conflict, RetryPolicy, Versioned, OptimisticLockError};
/// # diesel::table! { counters (id) { id -> BigInt, value -> BigInt, version -> Integer, } }
/// # #[derive(Queryable, Selectable, Identifiable, AsChangeset, Versioned)]
/// # #[diesel(table_name = counters)]
/// # struct Counter { id: i64, value: i64, version: i32 }
/// # fn f(conn: &mut SqliteConnection) -> Result<(), OptimisticLockError> {
/// retry_on_conflict(&RetryPolicy::default(), conn, |conn| {
///     let mut c: Counter = counters::table.find(1).select(Counter::as_select()).first(conn)?;
///     let next = c.value + 1;
///     c.update_with_lock(conn, counters::value.eq(next))
/// })
/// # }
/// ```
pub fn retry_on_conflict<C, T>(
    policy: &RetryPolicy,
    conn: &mut C,
    mut attempt: impl FnMut(&mut C) -> Result<T, OptimisticLockError>,
) -> Result<T, OptimisticLockError> {
    let result = policy.retry(
        || attempt(conn),
        OptimisticLockError::is_conflict,
        |n, _, backoff| {
            RETRIES.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                attempt = n,
                backoff_ms = backoff.as_secs_f64() * 1e3,
                "optimistic lock: retrying"
            );
        },
    );
    // A conflict that comes back is the last attempt's.
    if let Err(err) = &result {
        if err.is_conflict() {
            EXHAUSTED.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                attempts = policy.max_attempts,
                "optimistic lock: retries exhausted: {err}"
            );
        }
    }
    result
}
