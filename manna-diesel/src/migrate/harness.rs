//! The engine as a Diesel migration.

use std::fmt;
use std::sync::Arc;

use diesel::backend::Backend;
use diesel::connection::BoxableConnection;
use diesel::migration::{
    Migration, MigrationMetadata, MigrationName, MigrationSource, MigrationVersion,
};
use manna_crypto::Keyring;

use super::{MigrationConnection, MigrationError, Reencryption};

/// Re-encryption of one or more columns as a [`diesel::migration::Migration`],
/// so it runs with the application's other migrations through
/// `MigrationHarness`. Combine it with `embed_migrations!` through
/// [`MigrationsWith`].
///
/// - It runs **outside** a migration-wide transaction (one transaction per
///   batch, like `manna migrate`), so the table stays writable and a
///   killed run keeps its progress. If it stops, the harness does not
///   record it as applied; fix the cause and run the migrations again.
/// - Its name must sort after the SQL migration that creates the audit
///   tables (`2025-09-18-060000_upgrade_to_aes256_gcm`).
/// - Keys: the process-wide default keyring (from the environment, see
///   `manna_crypto::default_keyring`), unless one is given with
///   [`ReencryptMigration::keyring`].
/// - Reverting it does nothing: v1 envelopes stay readable, and nothing
///   ever writes Fernet.
/// - It needs the concrete connection: `PgConnection`, `MysqlConnection`
///   or `SqliteConnection` (for an r2d2 pooled one, `&mut *pooled`).
///
/// ```
/// use diesel::prelude::*;
/// use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
/// use manna_diesel::migrate::{MigrationsWith, ReencryptMigration, Reencryption};
///
/// const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");
///
/// # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # manna_crypto::set_default_keyring(manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?);
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// let source = MigrationsWith::new(MIGRATIONS).and(
///     ReencryptMigration::new("2025-09-18-060001_reencrypt_plaid_items")
///         .column(Reencryption::new("plaid_items", "access_token", "plaid_items.access_token"))
///         .column(Reencryption::new("plaid_items", "notes", "plaid_items.notes")),
/// );
/// let applied = conn.run_pending_migrations(source)?;
/// assert_eq!(applied.last().map(|v| v.to_string()).as_deref(), Some("20250918060001"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ReencryptMigration {
    name: Name,
    jobs: Vec<Reencryption>,
    keyring: Option<Arc<Keyring>>,
}

#[derive(Clone, Debug)]
struct Name {
    full: String,
    version: String,
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl MigrationName for Name {
    fn version(&self) -> MigrationVersion<'_> {
        MigrationVersion::from(self.version.as_str())
    }
}

struct OutsideTransaction;

impl MigrationMetadata for OutsideTransaction {
    fn run_in_transaction(&self) -> bool {
        false
    }
}

impl ReencryptMigration {
    /// A migration named like Diesel's directories, `YYYY-MM-DD-HHMMSS_name`;
    /// its version is the digits before the first `_`, as for Diesel's own.
    ///
    /// ```
    /// # use manna_diesel::migrate::ReencryptMigration;
    /// let m = ReencryptMigration::new("2025-09-18-060001_reencrypt_plaid_items");
    /// # let _ = m;
    /// ```
    pub fn new(name: &str) -> Self {
        let version = name.split('_').next().unwrap_or(name).replace('-', "");
        Self {
            name: Name {
                full: name.to_owned(),
                version,
            },
            jobs: Vec::new(),
            keyring: None,
        }
    }

    /// Adds a column to re-encrypt; columns run in the order added.
    ///
    /// ```
    /// # use manna_diesel::migrate::{ReencryptMigration, Reencryption};
    /// let m = ReencryptMigration::new("2025-09-18-060001_reencrypt")
    ///     .column(Reencryption::new("users", "email", "users.email").batch_size(2000));
    /// # let _ = m;
    /// ```
    pub fn column(mut self, job: Reencryption) -> Self {
        self.jobs.push(job);
        self
    }

    /// Uses this keyring instead of the process-wide default.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use manna_diesel::migrate::ReencryptMigration;
    /// let ring = manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?;
    /// let m = ReencryptMigration::new("2025-09-18-060001_reencrypt").keyring(Arc::new(ring));
    /// # let _ = m;
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    fn run_on<C: MigrationConnection>(&self, conn: &mut C) -> Result<(), MigrationError> {
        let keyring = match &self.keyring {
            Some(ring) => Arc::clone(ring),
            None => manna_crypto::default_keyring().map_err(MigrationError::Crypto)?,
        };
        for job in &self.jobs {
            let report = job.run(conn, &keyring)?;
            tracing::info!(
                migration = %self.name,
                table = job.table(),
                column = job.column(),
                converted = report.converted,
                "column re-encrypted"
            );
        }
        Ok(())
    }
}

impl<DB: Backend + 'static> Migration<DB> for ReencryptMigration {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        let any = conn.as_any_mut();
        #[cfg(feature = "postgres")]
        if let Some(conn) = any.downcast_mut::<diesel::PgConnection>() {
            return Ok(self.run_on(conn)?);
        }
        #[cfg(feature = "mysql")]
        if let Some(conn) = any.downcast_mut::<diesel::MysqlConnection>() {
            return Ok(self.run_on(conn)?);
        }
        #[cfg(feature = "sqlite")]
        if let Some(conn) = any.downcast_mut::<diesel::SqliteConnection>() {
            return Ok(self.run_on(conn)?);
        }
        let _ = any;
        Err(MigrationError::UnsupportedConnection.into())
    }

    fn revert(&self, _conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        Ok(())
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        &OutsideTransaction
    }

    fn name(&self) -> &dyn MigrationName {
        &self.name
    }
}

/// A migration source with [`ReencryptMigration`]s added, e.g. to the SQL
/// migrations of `embed_migrations!`. The harness sorts everything by
/// version. See [`ReencryptMigration`] for an example.
///
/// ```
/// # use manna_diesel::migrate::{MigrationsWith, ReencryptMigration};
/// let source = MigrationsWith::new(diesel_migrations::FileBasedMigrations::from_path("../migrations")?)
///     .and(ReencryptMigration::new("2025-09-18-060001_reencrypt"));
/// # let _ = source;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct MigrationsWith<S> {
    source: S,
    extra: Vec<ReencryptMigration>,
}

impl<S> MigrationsWith<S> {
    /// Wraps a migration source.
    ///
    /// ```
    /// # use manna_diesel::migrate::MigrationsWith;
    /// let source = MigrationsWith::new(diesel_migrations::FileBasedMigrations::from_path("../migrations")?);
    /// # let _ = source;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(source: S) -> Self {
        Self {
            source,
            extra: Vec::new(),
        }
    }

    /// Adds a re-encryption migration.
    ///
    /// ```
    /// # use manna_diesel::migrate::{MigrationsWith, ReencryptMigration};
    /// let source = MigrationsWith::new(diesel_migrations::FileBasedMigrations::from_path("../migrations")?)
    ///     .and(ReencryptMigration::new("2025-09-18-060001_reencrypt"));
    /// # let _ = source;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn and(mut self, migration: ReencryptMigration) -> Self {
        self.extra.push(migration);
        self
    }
}

impl<DB: Backend + 'static, S: MigrationSource<DB>> MigrationSource<DB> for MigrationsWith<S> {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        let mut all = self.source.migrations()?;
        all.extend(
            self.extra
                .iter()
                .map(|m| Box::new(m.clone()) as Box<dyn Migration<DB>>),
        );
        Ok(all)
    }
}
