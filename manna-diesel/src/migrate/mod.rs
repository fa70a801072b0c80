//! Re-encrypting stored values in place: legacy Fernet tokens to v1
//! envelopes (the Fernet → AES-256-GCM upgrade), and v1 envelopes under a
//! previous key to the primary key (key rotation), with zero downtime.
//!
//! One engine, [`Reencryption`], does both. It
//!
//! - pages through the table by id (keyset pagination: `WHERE id > $last
//!   ORDER BY id LIMIT n`), so memory stays flat whatever the table size;
//! - decrypts each value that [`Keyring::needs_reencryption`](manna_crypto::Keyring::needs_reencryption) and encrypts
//!   it again, under the primary key, with the same context;
//! - writes each batch in one transaction with **compare-and-swap**
//!   (`... WHERE id = ? AND col = <the value it read>`), so a row the
//!   application changed in the meantime is left alone and counted: the
//!   application already wrote it in the new format;
//! - writes a batch again when the database rolled it back for a lock
//!   conflict with the application (a deadlock, a lock wait timeout,
//!   SQLite busy): up to 10 attempts with backoff, safe because every row
//!   is still compare-and-swap ([`Report::batches_retried`] counts them);
//! - skips rows already under the primary key and NULLs, so a run is
//!   idempotent and can be killed at any point and run again;
//! - stops at the first batch holding a value it cannot decrypt, writing
//!   nothing of that batch, and names the row ids and the kind of failure
//!   (never the value), unless told to skip such rows and record them;
//! - records every run in the audit table `manna_encryption_audit`.
//!
//! The same engine runs behind the `manna migrate` / `manna rotate`
//! commands and behind [`ReencryptMigration`], a
//! [`diesel::migration::Migration`] for `MigrationHarness`.
//! [`census`] counts a column's values by format and key id (`manna verify`).
//!
//! # Example
//!
//! ```
//! use diesel::prelude::*;
//! use manna_crypto::{Key, Keyring};
//! use manna_diesel::migrate::{census, Reencryption};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! diesel::sql_query("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)").execute(&mut conn)?;
//!
//! // Rows written under an old key...
//! let old = Key::generate()?;
//! let old_ring = Keyring::builder(Key::from_bytes(*old.expose_secret())).build()?;
//! for id in 1..=3 {
//!     let value = old_ring.encrypt_string("ada@example.com", b"users.email")?;
//!     diesel::sql_query(format!("INSERT INTO users VALUES ({id}, '{value}')")).execute(&mut conn)?;
//! }
//!
//! // ...move to the new primary key.
//! let ring = Keyring::builder(Key::generate()?).previous(old).build()?;
//! let report = Reencryption::new("users", "email", "users.email").run(&mut conn, &ring)?;
//! assert_eq!(report.converted, 3);
//!
//! let counts = census(&mut conn, "users", "email", "id")?;
//! assert!(counts.is_complete(&ring));
//!
//! // Running it again finds nothing to do.
//! let again = Reencryption::new("users", "email", "users.email").run(&mut conn, &ring)?;
//! assert_eq!((again.converted, again.skipped), (0, 3));
//! # Ok(())
//! # }
//! ```

mod backend;
mod engine;
mod error;
mod harness;
mod sql;

pub use backend::MigrationConnection;
pub use engine::{
    census, census_binary, id_range, Census, InvalidRow, Reencryption, Report, Scope,
};
pub use error::MigrationError;
pub use harness::{MigrationsWith, ReencryptMigration};

#[doc(hidden)]
pub(crate) mod __private {
    pub use super::backend::{Bind, PageRow, Rewrite, Stored};
    pub use super::sql::{Dialect, Statements};
}

/// The statements that create the audit tables, `manna_encryption_audit`
/// (one row per run) and `manna_encryption_audit_invalid_rows` (rows a run
/// skipped as undecryptable). Portable across PostgreSQL, MySQL/MariaDB and
/// SQLite, and idempotent (`CREATE TABLE IF NOT EXISTS`).
///
/// The SQL migration `2025-09-18-060000_upgrade_to_aes256_gcm` holds the
/// same statements; [`ensure_audit_tables`] runs them.
///
/// ```
/// assert!(manna_diesel::migrate::AUDIT_TABLES_DDL.contains("manna_encryption_audit"));
/// ```
pub const AUDIT_TABLES_DDL: &str = "\
CREATE TABLE IF NOT EXISTS manna_encryption_audit (
    run_id VARCHAR(32) NOT NULL PRIMARY KEY,
    operation VARCHAR(16) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    column_name VARCHAR(255) NOT NULL,
    context VARCHAR(255) NULL,
    rows_converted BIGINT NOT NULL DEFAULT 0,
    rows_skipped BIGINT NOT NULL DEFAULT 0,
    rows_changed_concurrently BIGINT NOT NULL DEFAULT 0,
    rows_invalid BIGINT NOT NULL DEFAULT 0,
    last_id BIGINT NULL,
    from_format VARCHAR(255) NULL,
    to_format VARCHAR(32) NOT NULL,
    key_id VARCHAR(8) NOT NULL,
    started_at TIMESTAMP NULL DEFAULT NULL,
    finished_at TIMESTAMP NULL DEFAULT NULL,
    status VARCHAR(16) NOT NULL,
    error TEXT NULL
);
CREATE TABLE IF NOT EXISTS manna_encryption_audit_invalid_rows (
    run_id VARCHAR(32) NOT NULL,
    row_id BIGINT NOT NULL,
    failure VARCHAR(255) NOT NULL,
    PRIMARY KEY (run_id, row_id)
);
";

/// Creates the audit tables when they are missing (see [`AUDIT_TABLES_DDL`]).
///
/// ```
/// use diesel::prelude::*;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// manna_diesel::migrate::ensure_audit_tables(&mut conn)?;
/// manna_diesel::migrate::ensure_audit_tables(&mut conn)?; // idempotent
/// # Ok(())
/// # }
/// ```
pub fn ensure_audit_tables<C: MigrationConnection>(conn: &mut C) -> Result<(), MigrationError> {
    conn.batch_execute(AUDIT_TABLES_DDL)
        .map_err(MigrationError::Database)
}
