//! The re-encryption engine and the census.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use manna_crypto::{classify_bytes, Format, KeyId, Keyring};
use zeroize::Zeroizing;

use super::backend::{Bind, MigrationConnection, PageRow, Rewrite, Stored};
use super::sql::Statements;
use super::{ensure_audit_tables, MigrationError};
use crate::RetryPolicy;

/// Which stored values a run re-encrypts.
///
/// ```
/// use manna_diesel::migrate::{Reencryption, Scope};
/// let rotate = Reencryption::new("users", "email", "users.email").scope(Scope::PreviousKeys);
/// # let _ = rotate;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// Everything that [`Keyring::needs_reencryption`]: legacy Fernet tokens
    /// and v1 envelopes under previous keys (`manna migrate`).
    #[default]
    All,
    /// Only v1 envelopes under previous AES keys; Fernet tokens are left
    /// alone and counted as skipped (`manna rotate`).
    PreviousKeys,
}

impl Scope {
    fn operation(self) -> &'static str {
        match self {
            Scope::All => "migrate",
            Scope::PreviousKeys => "rotate",
        }
    }
}

/// A row a run could not decrypt: its id and the kind of failure (never the value).
///
/// ```
/// use manna_diesel::migrate::InvalidRow;
/// let row = InvalidRow { id: 7, failure: "envelope is not valid base64url".into() };
/// assert_eq!(row.id, 7);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRow {
    /// The row's id.
    pub id: i64,
    /// What went wrong, e.g. "decryption failed: wrong key, wrong context, or tampered data".
    pub failure: String,
}

/// What a run did (or, in a dry run, would do).
///
/// ```
/// use manna_diesel::migrate::Report;
/// let report = Report::default();
/// assert_eq!(report.converted + report.skipped, 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The run's id in the audit table (32 hex digits).
    pub run_id: String,
    /// Non-NULL values read.
    pub scanned: u64,
    /// Values re-encrypted under the primary key and written.
    pub converted: u64,
    /// Values left as they were: already under the primary key, or out of
    /// the run's [`Scope`].
    pub skipped: u64,
    /// Values the application changed between the read and the write; they
    /// were left alone (the application wrote them in the new format).
    pub changed_concurrently: u64,
    /// Values that could not be decrypted and were skipped (with
    /// `skip_invalid`); each is recorded in the audit table.
    pub invalid: u64,
    /// The first 100 of those rows (the audit table has all of them).
    pub invalid_rows: Vec<InvalidRow>,
    /// Rows needing re-encryption, by the format they were found in:
    /// `fernet` or `v1:<key id>`.
    pub from_formats: BTreeMap<String, u64>,
    /// The last id read; the run has seen every row up to it.
    pub last_id: Option<i64>,
    /// Batches read.
    pub batches: u64,
    /// Batch writes the database rolled back for a lock conflict with the
    /// application (a deadlock, a lock wait timeout, SQLite busy) and that
    /// were written again.
    pub batches_retried: u64,
    /// Whether this was a dry run (nothing written, no audit row).
    pub dry_run: bool,
}

impl Report {
    fn formats_found(&self) -> String {
        self.from_formats
            .iter()
            .map(|(format, n)| format!("{format}={n}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A re-encryption run over one column: see the [module docs](super).
///
/// The defaults: id column `id`, batches of 1000 rows, [`Scope::All`], an
/// audit row, stop at the first undecryptable value.
///
/// ```
/// use manna_diesel::migrate::Reencryption;
/// let job = Reencryption::new("plaid_items", "access_token", "plaid_items.access_token")
///     .id_column("id")
///     .batch_size(5000)
///     .skip_invalid(true);
/// # let _ = job;
/// ```
#[derive(Clone, Debug)]
pub struct Reencryption {
    table: String,
    column: String,
    id_column: String,
    context: Vec<u8>,
    batch_size: usize,
    scope: Scope,
    dry_run: bool,
    skip_invalid: bool,
    audit: bool,
    binary: bool,
}

/// How often, and after what pauses, a batch that the database rolled back
/// for a lock conflict (deadlock, lock wait timeout, SQLite busy) is written
/// again before the run stops: 10 attempts, full jitter from 20 ms up to
/// 2 s (about 3 s of waiting in all, on average, before it gives up).
fn batch_retry() -> RetryPolicy {
    RetryPolicy::default()
        .base_delay(Duration::from_millis(20))
        .max_delay(Duration::from_secs(2))
        .max_attempts(10)
}

/// A database error that says the transaction lost a lock conflict and was
/// (or must be) rolled back, so that running it again can succeed.
///
/// Diesel reports PostgreSQL's SQLSTATE 40001 and MySQL/MariaDB's deadlock
/// (1213) as `SerializationFailure`. The others arrive as `Unknown`,
/// without their codes, so they are told by message: PostgreSQL `deadlock
/// detected` (40P01) and `canceling statement due to lock timeout` (55P03,
/// with `lock_timeout` set), MySQL/MariaDB `Lock wait timeout exceeded`
/// (1205), SQLite `database is locked` (`SQLITE_BUSY`). A PostgreSQL
/// server that reports them in another language stops the run instead, as
/// before; running it again resumes.
fn is_lock_failure(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message().to_ascii_lowercase();
            [
                "deadlock",
                "lock timeout",
                "lock wait timeout",
                "database is locked",
            ]
            .iter()
            .any(|needle| message.contains(needle))
        }
        _ => false,
    }
}

/// Undecryptable rows kept in a [`Report`] (and logged); the audit table has all.
const SHOWN_INVALID: usize = 100;

/// The largest batch: MySQL takes at most 65,535 bind parameters, three per row.
const MAX_BATCH: usize = 20_000;

/// One page, planned: what to write and what was found.
#[derive(Default)]
struct Batch {
    rewrites: Vec<Rewrite>,
    invalid: Vec<InvalidRow>,
    skipped: u64,
    from_formats: BTreeMap<String, u64>,
    last_id: Option<i64>,
}

enum Plan {
    Skip,
    Rewrite { new: Stored, from: String },
    Invalid(String),
}

impl Reencryption {
    /// A run over `table.column`, whose values were encrypted with `context`
    /// (the `#[manna(context = ...)]` of the column's type).
    ///
    /// Names are used exactly as given (quoted; case-sensitive on
    /// PostgreSQL). `table` may be `schema.table`. The id column must be a
    /// unique integer key (`INTEGER`/`BIGINT`, usually the primary key):
    /// pages are `id > last`, so rows sharing an id across a page boundary
    /// would be missed.
    ///
    /// ```
    /// # use manna_diesel::migrate::Reencryption;
    /// let job = Reencryption::new("app.users", "email", "users.email");
    /// # let _ = job;
    /// ```
    pub fn new(table: &str, column: &str, context: impl Into<Vec<u8>>) -> Self {
        Self {
            table: table.to_owned(),
            column: column.to_owned(),
            id_column: "id".to_owned(),
            context: context.into(),
            batch_size: 1000,
            scope: Scope::All,
            dry_run: false,
            skip_invalid: false,
            audit: true,
            binary: false,
        }
    }

    /// The integer key to page by (default `id`).
    ///
    /// ```
    /// # use manna_diesel::migrate::Reencryption;
    /// let job = Reencryption::new("users", "email", "users.email").id_column("user_id");
    /// # let _ = job;
    /// ```
    pub fn id_column(mut self, id_column: &str) -> Self {
        id_column.clone_into(&mut self.id_column);
        self
    }

    /// Rows per batch and per transaction (default 1000, at most 20,000).
    ///
    /// ```
    /// # use manna_diesel::migrate::Reencryption;
    /// let job = Reencryption::new("users", "email", "users.email").batch_size(500);
    /// # let _ = job;
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Which values to re-encrypt (default [`Scope::All`]).
    ///
    /// ```
    /// # use manna_diesel::migrate::{Reencryption, Scope};
    /// let job = Reencryption::new("users", "email", "users.email").scope(Scope::PreviousKeys);
    /// # let _ = job;
    /// ```
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Read and decrypt everything, count what would change, write nothing
    /// (no audit row either).
    ///
    /// ```
    /// # use manna_diesel::migrate::Reencryption;
    /// let job = Reencryption::new("users", "email", "users.email").dry_run(true);
    /// # let _ = job;
    /// ```
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Skip undecryptable values and record them in
    /// `manna_encryption_audit_invalid_rows`, instead of stopping.
    ///
    /// ```
    /// # use manna_diesel::migrate::Reencryption;
    /// let job = Reencryption::new("users", "email", "users.email").skip_invalid(true);
    /// # let _ = job;
    /// ```
    pub fn skip_invalid(mut self, skip_invalid: bool) -> Self {
        self.skip_invalid = skip_invalid;
        self
    }

    /// The column holds binary envelopes (`BYTEA`/`BLOB`, a type with
    /// `#[manna(sql_type = Binary)]`) instead of text. Values are rewritten
    /// as binary envelopes.
    ///
    /// ```
    /// # use manna_diesel::migrate::Reencryption;
    /// let job = Reencryption::new("documents", "scan", "documents.scan").binary(true);
    /// # let _ = job;
    /// ```
    pub fn binary(mut self, binary: bool) -> Self {
        self.binary = binary;
        self
    }

    /// Record the run in the audit tables (default `true`; they are created
    /// when missing).
    ///
    /// ```
    /// # use manna_diesel::migrate::Reencryption;
    /// let job = Reencryption::new("users", "email", "users.email").audit(false);
    /// # let _ = job;
    /// ```
    pub fn audit(mut self, audit: bool) -> Self {
        self.audit = audit;
        self
    }

    /// The table this run works on.
    ///
    /// ```
    /// # use manna_diesel::migrate::Reencryption;
    /// assert_eq!(Reencryption::new("users", "email", "users.email").table(), "users");
    /// ```
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The id column this run pages by.
    ///
    /// ```
    /// # use manna_diesel::migrate::Reencryption;
    /// assert_eq!(Reencryption::new("users", "email", "users.email").id_column_name(), "id");
    /// ```
    pub fn id_column_name(&self) -> &str {
        &self.id_column
    }

    /// The column this run works on.
    ///
    /// ```
    /// # use manna_diesel::migrate::Reencryption;
    /// assert_eq!(Reencryption::new("users", "email", "users.email").column(), "email");
    /// ```
    pub fn column(&self) -> &str {
        &self.column
    }

    /// Runs to the end of the table. See [`Reencryption::run_with_progress`].
    ///
    /// ```
    /// # use diesel::prelude::*;
    /// # use manna_crypto::{Key, Keyring};
    /// # use manna_diesel::migrate::Reencryption;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = SqliteConnection::establish(":memory:")?;
    /// diesel::sql_query("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)").execute(&mut conn)?;
    /// diesel::sql_query("INSERT INTO users VALUES (1, NULL)").execute(&mut conn)?;
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// let report = Reencryption::new("users", "email", "users.email").run(&mut conn, &ring)?;
    /// assert_eq!(report.scanned, 0, "NULLs are left alone");
    /// # Ok(())
    /// # }
    /// ```
    pub fn run<C: MigrationConnection>(
        &self,
        conn: &mut C,
        keyring: &Keyring,
    ) -> Result<Report, MigrationError> {
        self.run_with_progress(conn, keyring, |_| {})
    }

    /// Runs to the end of the table, calling `progress` after every batch
    /// with the counts so far.
    ///
    /// On success the audit row's status is `completed`; when the run
    /// stops, `failed`, with the error (row ids and kinds of failure, never
    /// values). A killed run's row stays `running` with the counts of its
    /// last committed batch; running again finishes the job.
    ///
    /// ```
    /// # use diesel::prelude::*;
    /// # use manna_crypto::{Key, Keyring};
    /// # use manna_diesel::migrate::Reencryption;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut conn = SqliteConnection::establish(":memory:")?;
    /// # diesel::sql_query("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)").execute(&mut conn)?;
    /// # let ring = Keyring::builder(Key::generate()?).build()?;
    /// let mut batches = 0;
    /// Reencryption::new("users", "email", "users.email")
    ///     .run_with_progress(&mut conn, &ring, |report| batches = report.batches)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_with_progress<C: MigrationConnection>(
        &self,
        conn: &mut C,
        keyring: &Keyring,
        mut progress: impl FnMut(&Report),
    ) -> Result<Report, MigrationError> {
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            return Err(MigrationError::InvalidBatchSize(self.batch_size));
        }
        let statements = Statements::new(
            C::DIALECT,
            &self.table,
            &self.id_column,
            &self.column,
            self.batch_size,
        )?
        .binary(self.binary);
        let mut report = Report {
            run_id: new_run_id()?,
            dry_run: self.dry_run,
            ..Report::default()
        };
        let audited = self.audit && !self.dry_run;
        if audited {
            ensure_audit_tables(conn)?;
            let key_id = keyring.primary_key_id().to_string();
            conn.execute_binds(
                &statements.audit_start(),
                &[
                    Bind::Text(&report.run_id),
                    Bind::Text(self.scope.operation()),
                    Bind::Text(&self.table),
                    Bind::Text(&self.column),
                    Bind::Text(&String::from_utf8_lossy(&self.context)),
                    Bind::Text(&key_id),
                ],
            )?;
        }
        tracing::info!(
            run_id = %report.run_id,
            table = %self.table,
            column = %self.column,
            operation = self.scope.operation(),
            dry_run = self.dry_run,
            "re-encryption started"
        );

        let outcome = self.batches(
            conn,
            keyring,
            &statements,
            &mut report,
            audited,
            &mut progress,
        );

        if audited {
            let (status, error) = match &outcome {
                Ok(()) => ("completed", None),
                Err(e) => ("failed", Some(e.to_string())),
            };
            let finish = conn
                .execute_binds(
                    &statements.audit_progress(),
                    &progress_binds(&report, &report.formats_found()),
                )
                .and_then(|_| {
                    conn.execute_binds(
                        &statements.audit_finish(),
                        &[
                            Bind::Text(status),
                            Bind::OptText(error.as_deref()),
                            Bind::Text(&report.run_id),
                        ],
                    )
                });
            if let Err(e) = finish {
                tracing::warn!(run_id = %report.run_id, error = %e, "could not record the end of the run in the audit table");
            }
        }
        match outcome {
            Ok(()) => {
                tracing::info!(
                    run_id = %report.run_id,
                    converted = report.converted,
                    skipped = report.skipped,
                    changed_concurrently = report.changed_concurrently,
                    invalid = report.invalid,
                    "re-encryption finished"
                );
                Ok(report)
            }
            Err(e) => Err(e),
        }
    }

    /// Pages through the table. The crypto of one batch runs on a worker
    /// thread while this thread commits the batch before it and fetches the
    /// one after, so the database never waits for the CPU work. Batches are
    /// still committed in id order, each one only after it was fully planned.
    fn batches<C: MigrationConnection>(
        &self,
        conn: &mut C,
        keyring: &Keyring,
        statements: &Statements,
        report: &mut Report,
        audited: bool,
        progress: &mut impl FnMut(&Report),
    ) -> Result<(), MigrationError> {
        let context_checked = &AtomicBool::new(false);
        std::thread::scope(|scope| {
            let mut rows = conn.fetch_page(&statements.first_page, i64::MIN, self.binary)?;
            let mut pending: Option<Batch> = None;
            while let Some(last) = rows.last() {
                let after = last.id;
                let worker = scope.spawn(move || self.plan_batch(keyring, rows, context_checked));
                let io = match pending.take() {
                    Some(batch) => self
                        .commit(conn, statements, report, audited, batch, progress)
                        .and_then(|()| {
                            Ok(conn.fetch_page(&statements.page, after, self.binary)?)
                        }),
                    None => conn
                        .fetch_page(&statements.page, after, self.binary)
                        .map_err(Into::into),
                };
                let batch = worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                let next = io?;
                if !batch.invalid.is_empty() && !self.skip_invalid {
                    return Err(MigrationError::InvalidRows {
                        rows: batch.invalid,
                    });
                }
                pending = Some(batch);
                rows = next;
            }
            match pending {
                Some(batch) => self.commit(conn, statements, report, audited, batch, progress),
                None => Ok(()),
            }
        })
    }

    /// Decides, and for rewrites computes, every row's new value.
    fn plan_batch(
        &self,
        keyring: &Keyring,
        rows: Vec<PageRow>,
        context_checked: &AtomicBool,
    ) -> Result<Batch, MigrationError> {
        let mut batch = Batch {
            last_id: rows.last().map(|r| r.id),
            ..Batch::default()
        };
        for row in rows {
            let Some(old) = row.value else { continue };
            match self.plan(keyring, row.id, &old, context_checked)? {
                Plan::Skip => batch.skipped += 1,
                Plan::Rewrite { new, from } => {
                    *batch.from_formats.entry(from).or_default() += 1;
                    batch.rewrites.push(Rewrite {
                        id: row.id,
                        old,
                        new,
                    });
                }
                Plan::Invalid(failure) => batch.invalid.push(InvalidRow {
                    id: row.id,
                    failure,
                }),
            }
        }
        Ok(batch)
    }

    /// Writes one planned batch (compare-and-swap) and its audit progress in
    /// one transaction, then reports progress.
    fn commit<C: MigrationConnection>(
        &self,
        conn: &mut C,
        statements: &Statements,
        report: &mut Report,
        audited: bool,
        batch: Batch,
        progress: &mut impl FnMut(&Report),
    ) -> Result<(), MigrationError> {
        let Batch {
            rewrites,
            invalid,
            skipped,
            from_formats,
            last_id,
        } = batch;
        let planned = rewrites.len() as u64;
        let mut next = report.clone();
        next.batches += 1;
        next.scanned += planned + skipped + invalid.len() as u64;
        next.skipped += skipped;
        next.invalid += invalid.len() as u64;
        next.last_id = last_id;
        for (format, n) in from_formats {
            *next.from_formats.entry(format).or_default() += n;
        }

        if self.dry_run {
            next.converted += planned;
        } else if !rewrites.is_empty() || !invalid.is_empty() {
            let from_summary = next.formats_found();
            let (converted, changed) = (next.converted, next.changed_concurrently);
            let next = &mut next;
            let run_id = &report.run_id;
            let mut retried = 0;
            batch_retry().retry(
                // Counts are set, not added to: a rolled-back attempt leaves no trace.
                || {
                    conn.transaction::<_, MigrationError, _>(|conn| {
                        let written = conn.write_batch(statements, &rewrites)? as u64;
                        next.converted = converted + written;
                        next.changed_concurrently = changed + planned - written.min(planned);
                        if audited {
                            for row in &invalid {
                                conn.execute_binds(
                                    &statements.audit_invalid_row(),
                                    &[
                                        Bind::Text(&next.run_id),
                                        Bind::BigInt(row.id),
                                        Bind::Text(&row.failure),
                                    ],
                                )?;
                            }
                            conn.execute_binds(
                                &statements.audit_progress(),
                                &progress_binds(next, &from_summary),
                            )?;
                        }
                        Ok(())
                    })
                },
                |e| matches!(e, MigrationError::Database(e) if is_lock_failure(e)),
                // The batch was rolled back whole. Writing it again is safe:
                // each row is still compare-and-swap, so a value the
                // application wrote meanwhile is left alone.
                |attempt, e, pause| {
                    retried += 1;
                    tracing::warn!(
                        %run_id,
                        attempt,
                        error = %e,
                        "batch rolled back by a lock conflict with the application; writing it again in {pause:?}"
                    );
                },
            )?;
            next.batches_retried += retried;
        }
        let mut overflow_logged = report.invalid > SHOWN_INVALID as u64;
        for row in invalid {
            if next.invalid_rows.len() < SHOWN_INVALID {
                tracing::warn!(id = row.id, failure = %row.failure, "skipped a value that cannot be decrypted");
                next.invalid_rows.push(row);
            } else if !overflow_logged {
                overflow_logged = true;
                tracing::warn!("more values cannot be decrypted; manna_encryption_audit_invalid_rows lists them all");
            }
        }
        *report = next;
        progress(report);
        Ok(())
    }

    /// What to do with one value. The first value found already under the
    /// primary key is decrypted once, as a check of the context: Fernet
    /// tokens carry none, so a wrong `context` would otherwise go unnoticed
    /// and re-encrypt them under it.
    fn plan(
        &self,
        keyring: &Keyring,
        id: i64,
        old: &Stored,
        context_checked: &AtomicBool,
    ) -> Result<Plan, MigrationError> {
        let decrypt = |value: &Stored| match value {
            Stored::Text(text) => keyring.decrypt_text(text, &self.context),
            Stored::Binary(bytes) => keyring.decrypt_bytes(bytes, &self.context),
        };
        let from = match classify_bytes(old.as_bytes()) {
            Format::V1 { key_id } if key_id == keyring.primary_key_id() => {
                if !context_checked.load(Ordering::Relaxed) {
                    match decrypt(old) {
                        Ok(plain) => drop(Zeroizing::new(plain)),
                        Err(manna_crypto::Error::Decrypt) => {
                            return Err(MigrationError::ContextMismatch {
                                id,
                                context: String::from_utf8_lossy(&self.context).into_owned(),
                            })
                        }
                        Err(e) => return Ok(Plan::Invalid(e.to_string())),
                    }
                    context_checked.store(true, Ordering::Relaxed);
                }
                return Ok(Plan::Skip);
            }
            Format::Fernet if self.scope == Scope::PreviousKeys => return Ok(Plan::Skip),
            Format::V1 { key_id } => format!("v1:{key_id}"),
            Format::Fernet => "fernet".to_owned(),
            _ => {
                return Ok(Plan::Invalid(
                    manna_crypto::Error::UnknownFormat.to_string(),
                ))
            }
        };
        let plain = match decrypt(old) {
            Ok(plain) => Zeroizing::new(plain),
            Err(e) => return Ok(Plan::Invalid(e.to_string())),
        };
        let new = match old {
            Stored::Text(_) => keyring
                .encrypt_to_text(&plain, &self.context)
                .map(Stored::Text),
            Stored::Binary(_) => keyring
                .encrypt_bytes(&plain, &self.context)
                .map(Stored::Binary),
        }
        .map_err(MigrationError::Crypto)?;
        Ok(Plan::Rewrite { new, from })
    }
}

fn progress_binds<'a>(report: &'a Report, from_summary: &'a str) -> [Bind<'a>; 7] {
    [
        Bind::BigInt(saturating_i64(report.converted)),
        Bind::BigInt(saturating_i64(report.skipped)),
        Bind::BigInt(saturating_i64(report.changed_concurrently)),
        Bind::BigInt(saturating_i64(report.invalid)),
        Bind::OptBigInt(report.last_id),
        Bind::OptText((!from_summary.is_empty()).then_some(from_summary)),
        Bind::Text(&report.run_id),
    ]
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn new_run_id() -> Result<String, MigrationError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| MigrationError::Crypto(manna_crypto::Error::Rng))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// How a column's values are stored: counts per format and key id.
/// `manna verify` prints it.
///
/// ```
/// use manna_diesel::migrate::Census;
/// let census = Census::default();
/// assert_eq!(census.total, 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Census {
    /// Rows read.
    pub total: u64,
    /// NULL values.
    pub null: u64,
    /// Legacy Fernet tokens.
    pub fernet: u64,
    /// v1 envelopes, per key id (from the header; not decrypted).
    pub v1: BTreeMap<KeyId, u64>,
    /// Values that are neither.
    pub unrecognized: u64,
}

impl Census {
    /// Values that are not NULL and not v1 under `keyring`'s primary key.
    ///
    /// ```
    /// # use manna_diesel::migrate::Census;
    /// # let ring = manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?;
    /// assert_eq!(Census::default().remaining(&ring), 0);
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn remaining(&self, keyring: &Keyring) -> u64 {
        let primary = keyring.primary_key_id();
        self.fernet
            + self.unrecognized
            + self
                .v1
                .iter()
                .filter(|(id, _)| **id != primary)
                .map(|(_, n)| n)
                .sum::<u64>()
    }

    /// True when every value is NULL or v1 under the primary key: then the
    /// legacy and previous keys can be retired.
    ///
    /// ```
    /// # use manna_diesel::migrate::Census;
    /// # let ring = manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?;
    /// assert!(Census::default().is_complete(&ring));
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn is_complete(&self, keyring: &Keyring) -> bool {
        self.remaining(keyring) == 0
    }
}

/// Counts the values of the text column `table.column` per format and key
/// id, paging by `id_column` (memory stays flat). Nothing is decrypted.
///
/// ```
/// # use diesel::prelude::*;
/// # use manna_diesel::migrate::census;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// diesel::sql_query("CREATE TABLE t (id INTEGER PRIMARY KEY, c TEXT)").execute(&mut conn)?;
/// diesel::sql_query("INSERT INTO t VALUES (1, NULL), (2, 'gAAAAABl'), (3, 'plain')").execute(&mut conn)?;
/// let counts = census(&mut conn, "t", "c", "id")?;
/// assert_eq!((counts.total, counts.null, counts.fernet, counts.unrecognized), (3, 1, 1, 1));
/// # Ok(())
/// # }
/// ```
pub fn census<C: MigrationConnection>(
    conn: &mut C,
    table: &str,
    column: &str,
    id_column: &str,
) -> Result<Census, MigrationError> {
    census_of(conn, table, column, id_column, false)
}

/// [`census`] for a binary column (`BYTEA`/`BLOB`, `#[manna(sql_type = Binary)]`).
///
/// ```
/// # use diesel::prelude::*;
/// # use manna_diesel::migrate::census_binary;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ring = manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?;
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// diesel::sql_query("CREATE TABLE t (id INTEGER PRIMARY KEY, c BLOB)").execute(&mut conn)?;
/// diesel::sql_query("INSERT INTO t VALUES (1, ?)")
///     .bind::<diesel::sql_types::Binary, _>(ring.encrypt_bytes(b"scan.pdf", b"t.c")?)
///     .execute(&mut conn)?;
/// let counts = census_binary(&mut conn, "t", "c", "id")?;
/// assert!(counts.is_complete(&ring));
/// # Ok(())
/// # }
/// ```
pub fn census_binary<C: MigrationConnection>(
    conn: &mut C,
    table: &str,
    column: &str,
    id_column: &str,
) -> Result<Census, MigrationError> {
    census_of(conn, table, column, id_column, true)
}

fn census_of<C: MigrationConnection>(
    conn: &mut C,
    table: &str,
    column: &str,
    id_column: &str,
    binary: bool,
) -> Result<Census, MigrationError> {
    let statements = Statements::new(C::DIALECT, table, id_column, column, 5000)?;
    let mut census = Census::default();
    let mut page = &statements.census_first_page;
    let mut after = i64::MIN;
    loop {
        let rows = conn.fetch_page(page, after, binary)?;
        page = &statements.census_page;
        let Some(last) = rows.last() else {
            return Ok(census);
        };
        after = last.id;
        for row in rows {
            census.total += 1;
            match row.value.as_ref().map(|v| classify_bytes(v.as_bytes())) {
                None => census.null += 1,
                Some(Format::Fernet) => census.fernet += 1,
                Some(Format::V1 { key_id }) => *census.v1.entry(key_id).or_default() += 1,
                Some(_) => census.unrecognized += 1,
            }
        }
    }
}

/// The smallest and largest id of `table` (`None` when it is empty): a
/// run's progress is how far its last id is through this range. One index
/// lookup on each end; the table is not scanned.
///
/// ```
/// # use diesel::prelude::*;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// diesel::sql_query("CREATE TABLE t (id INTEGER PRIMARY KEY, c TEXT)").execute(&mut conn)?;
/// assert_eq!(manna_diesel::migrate::id_range(&mut conn, "t", "id")?, None);
/// diesel::sql_query("INSERT INTO t VALUES (3, NULL), (42, 'x')").execute(&mut conn)?;
/// assert_eq!(manna_diesel::migrate::id_range(&mut conn, "t", "id")?, Some((3, 42)));
/// # Ok(())
/// # }
/// ```
pub fn id_range<C: MigrationConnection>(
    conn: &mut C,
    table: &str,
    id_column: &str,
) -> Result<Option<(i64, i64)>, MigrationError> {
    let statements = Statements::new(C::DIALECT, table, id_column, id_column, 1)?;
    Ok(match conn.id_range(&statements.id_range)? {
        (Some(lo), Some(hi)) => Some((lo, hi)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};

    use super::is_lock_failure;

    fn db(kind: DatabaseErrorKind, message: &str) -> Error {
        Error::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn lock_conflicts_are_told_from_other_failures() {
        use DatabaseErrorKind::{ClosedConnection, SerializationFailure, UniqueViolation, Unknown};
        for retried in [
            db(
                SerializationFailure,
                "could not serialize access due to concurrent update",
            ),
            db(
                SerializationFailure,
                "Deadlock found when trying to get lock; try restarting transaction",
            ),
            db(Unknown, "deadlock detected"),
            db(Unknown, "canceling statement due to lock timeout"),
            db(
                Unknown,
                "Lock wait timeout exceeded; try restarting transaction",
            ),
            db(Unknown, "database is locked"),
        ] {
            assert!(is_lock_failure(&retried), "{retried}");
        }
        for stops in [
            db(Unknown, "syntax error at or near \"UPDTE\""),
            db(Unknown, "relation \"items\" does not exist"),
            db(
                UniqueViolation,
                "duplicate key value violates unique constraint",
            ),
            db(
                ClosedConnection,
                "server closed the connection unexpectedly",
            ),
            Error::NotFound,
        ] {
            assert!(!is_lock_failure(&stops), "{stops}");
        }
    }
}
