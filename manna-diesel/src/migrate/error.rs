//! What can stop a re-encryption run.

use super::InvalidRow;

/// Why a re-encryption run (or a census) stopped.
///
/// Messages name tables, columns, row ids and kinds of failure; never a
/// stored value, a plaintext or key bytes.
///
/// ```
/// use manna_diesel::migrate::{InvalidRow, MigrationError};
///
/// let err = MigrationError::InvalidRows {
///     rows: vec![InvalidRow { id: 42, failure: "input is neither a manna envelope nor a Fernet token".into() }],
/// };
/// assert_eq!(
///     err.to_string(),
///     "1 row(s) cannot be decrypted, nothing of their batch was written: \
///      id 42 (input is neither a manna envelope nor a Fernet token); \
///      fix or remove them, or rerun with skip_invalid (--skip-invalid) to record and skip them"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// A table or column name is not a plain SQL identifier.
    #[error(
        "invalid {what} name {name:?}: use letters, digits and underscores \
         (optionally `schema.table`), starting with a letter or underscore"
    )]
    InvalidIdentifier {
        /// `table`, `column` or `id column`.
        what: &'static str,
        /// The name given.
        name: String,
    },

    /// The batch size is outside `1..=20000`.
    #[error("batch size {0} is out of range: use 1 to 20000")]
    InvalidBatchSize(usize),

    /// A batch held values that cannot be decrypted; nothing of that batch
    /// was written.
    #[error(
        "{} row(s) cannot be decrypted, nothing of their batch was written: {}; \
         fix or remove them, or rerun with skip_invalid (--skip-invalid) to record and skip them",
        rows.len(),
        list_rows(rows)
    )]
    InvalidRows {
        /// The offending rows (at most the ones of one batch).
        rows: Vec<InvalidRow>,
    },

    /// A value already under the primary key does not decrypt with the
    /// run's context: the context is most likely wrong (or the value is
    /// damaged). Nothing of its batch was written.
    #[error(
        "the value at id {id}, already under the primary key, does not decrypt with context \
         {context:?}: check the context (the column's #[manna(context = ...)]); \
         nothing of this batch was written"
    )]
    ContextMismatch {
        /// The row checked.
        id: i64,
        /// The context given to the run.
        context: String,
    },

    /// The database refused a statement.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),

    /// Encrypting a value failed (the OS random generator failed).
    #[error("encryption failed: {0}")]
    Crypto(#[source] manna_crypto::Error),

    /// A [`ReencryptMigration`](super::ReencryptMigration) was given a
    /// connection type it cannot use.
    #[error(
        "ReencryptMigration runs on PgConnection, MysqlConnection or SqliteConnection \
         (with the matching manna-diesel feature); for a pooled connection pass `&mut *pooled`"
    )]
    UnsupportedConnection,
}

fn list_rows(rows: &[InvalidRow]) -> String {
    const SHOWN: usize = 20;
    let mut out = rows
        .iter()
        .take(SHOWN)
        .map(|r| format!("id {} ({})", r.id, r.failure))
        .collect::<Vec<_>>()
        .join(", ");
    if rows.len() > SHOWN {
        out.push_str(&format!(" and {} more", rows.len() - SHOWN));
    }
    out
}
