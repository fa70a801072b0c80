//! # manna-diesel
//!
//! Encrypted columns for Diesel: `#[derive(Encrypted)]` on a newtype stores
//! AES-256-GCM envelopes (see `manna-crypto`) and reads them back, and still
//! reads the legacy Fernet tokens the old Python backend wrote.
//!
//! Backends are Cargo features: `sqlite` (default; SQLite is compiled in, so
//! nothing needs installing), `postgres` (system libpq), `bundled-postgres`
//! (libpq compiled in) and `mysql` (system MySQL/MariaDB client library).
//!
//! Keys come from the process-wide default keyring of `manna-crypto`
//! (configured from `MANNA_ENCRYPTION_KEY_AES256` and friends, or installed
//! with [`manna_crypto::set_default_keyring`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod migrate;
mod versioned;

pub use error::ColumnError;
pub use manna_crypto;
pub use versioned::{
    lock_stats, retry_on_conflict, LockStats, OptimisticLockError, RetryPolicy, VersionNumber,
    Versioned,
};

/// Derives Diesel support for an encrypted newtype.
///
/// # What it generates
///
/// For `struct AccessToken(pub String)` with `#[manna(context = "...")]`:
///
/// - `ToSql` and `FromSql` for `Text` (or `Binary`) on every enabled backend,
///   `ToSql` for `Nullable<Text>`, `AsExpression` for the type and its
///   references (plain and `Nullable`), and `Queryable` (what
///   `#[derive(FromSqlRow)]` gives). The type then works in `Queryable`,
///   `Selectable`, `Insertable`, `AsChangeset` and `QueryableByName` models,
///   and as `Option<AccessToken>` for `Nullable` columns.
/// - Writes store a v1 envelope under the primary key of the default
///   keyring, with the context as associated data: the text form
///   (`manna:v1:...`) for `Text`, the binary form for `Binary`.
/// - Reads accept a v1 envelope under any key in the ring and, in `Text`
///   columns, a legacy Fernet token. Anything else fails that row with a
///   [`ColumnError`] naming the type and context, never the value.
/// - `Debug`, printing `AccessToken(<redacted>)`. **Do not derive `Debug`
///   yourself**: the two impls would conflict (error E0119), and a derived
///   one would print the secret.
/// - `From<String>`, `AsRef<String>` and `into_inner()`; the field stays
///   public if you make it so.
///
/// # Attributes
///
/// Required:
///
/// - `#[manna(context = "table.column")]`: bytes bound to every value as
///   associated data, so a ciphertext copied into another column does not
///   decrypt there. **Changing a context means re-encrypting the column's
///   rows** (existing values only decrypt under the old one). A good
///   context is `"<table>.<column>"`, fixed once chosen.
///
/// Optional:
///
/// - `#[manna(sql_type = Binary)]`: store the binary envelope in a
///   `Binary`/`BYTEA`/`BLOB` column. The default is `Text`. The field is
///   `String` or `Vec<u8>` either way.
///
/// # Example
///
/// ```
/// use diesel::prelude::*;
/// use manna_diesel::Encrypted;
///
/// diesel::table! {
///     plaid_items (id) {
///         id -> Integer,
///         access_token -> Text,
///         notes -> Nullable<Text>,
///     }
/// }
///
/// #[derive(Encrypted, Clone, PartialEq)]
/// #[manna(context = "plaid_items.access_token")]
/// pub struct AccessToken(pub String);
///
/// #[derive(Queryable, Selectable, Insertable, Debug)]
/// #[diesel(table_name = plaid_items)]
/// pub struct PlaidItem {
///     pub id: i32,
///     pub access_token: AccessToken,
///     pub notes: Option<AccessToken>,
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// manna_crypto::set_default_keyring(
///     manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?,
/// );
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// diesel::sql_query(
///     "CREATE TABLE plaid_items (id INTEGER PRIMARY KEY, access_token TEXT NOT NULL, notes TEXT)",
/// )
/// .execute(&mut conn)?;
///
/// let item = PlaidItem { id: 1, access_token: AccessToken("access-sandbox-1".into()), notes: None };
/// diesel::insert_into(plaid_items::table).values(&item).execute(&mut conn)?;
///
/// // The database holds an envelope...
/// let stored: String = plaid_items::table
///     .select(diesel::dsl::sql::<diesel::sql_types::Text>("access_token"))
///     .first(&mut conn)?;
/// assert!(stored.starts_with("manna:v1:"));
/// // ...the application reads the plaintext, and Debug keeps it hidden.
/// let loaded: PlaidItem = plaid_items::table.select(PlaidItem::as_select()).first(&mut conn)?;
/// assert_eq!(loaded.access_token.0, "access-sandbox-1");
/// assert_eq!(format!("{:?}", loaded.access_token), "AccessToken(<redacted>)");
/// # Ok(())
/// # }
/// ```
///
/// A model can also keep plain `String` fields and convert at the column:
///
/// ```
/// # use diesel::prelude::*;
/// # use manna_diesel::Encrypted;
/// # diesel::table! { users (id) { id -> Integer, email -> Text, } }
/// #[derive(Encrypted)]
/// #[manna(context = "users.email")]
/// pub struct Email(pub String);
///
/// #[derive(Queryable, Insertable)]
/// #[diesel(table_name = users)]
/// pub struct User {
///     pub id: i32,
///     #[diesel(serialize_as = Email, deserialize_as = Email)]
///     pub email: String,
/// }
///
/// impl From<Email> for String {
///     fn from(e: Email) -> String { e.into_inner() }
/// }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # manna_crypto::set_default_keyring(manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?);
/// # let mut conn = SqliteConnection::establish(":memory:")?;
/// # diesel::sql_query("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)").execute(&mut conn)?;
/// diesel::insert_into(users::table)
///     .values(User { id: 1, email: "ada@example.com".into() })
///     .execute(&mut conn)?;
/// let user: User = users::table.first(&mut conn)?;
/// assert_eq!(user.email, "ada@example.com");
/// # Ok(())
/// # }
/// ```
pub use manna_derive::Encrypted;

/// Derives [`Versioned`](trait@Versioned): optimistic locking for a Diesel model.
///
/// # What it generates
///
/// An impl of the [`Versioned`](trait@Versioned) trait, which gives the model
/// `update_with_lock`, `save_with_lock`, `delete_with_lock` and
/// `increment_version`. Each lock method is **one statement** guarded by the
/// version the model was loaded with:
///
/// ```sql
/// UPDATE plaid_items SET name = $1, version = $2 WHERE id = $3 AND version = $4   -- $2 = $4 + 1
/// DELETE FROM plaid_items WHERE id = $1 AND version = $2
/// ```
///
/// The in-memory version changes only after the database confirmed exactly
/// one row. Zero rows is [`OptimisticLockError::Conflict`] (or `NotFound`
/// when the row is gone, told apart by one `SELECT COUNT(*)` on that path
/// only). Works on every backend and with any Diesel connection, r2d2
/// pooled ones included.
///
/// # Attributes
///
/// Required:
///
/// - `#[diesel(table_name = ...)]`, as for Diesel's own derives.
///
/// Optional:
///
/// - `#[manna(version = lock_version)]`: the version field when it is not
///   called `version`. Its type is `i32` or `i64`.
/// - `#[diesel(primary_key(a, b))]`: as for `Identifiable`; composite keys
///   work. The default is the field `id`.
/// - `#[diesel(column_name = ...)]` on a field is honoured.
///
/// # Example
///
/// ```
/// use diesel::prelude::*;
/// use manna_diesel::{OptimisticLockError, Versioned};
///
/// diesel::table! {
///     plaid_items (id) {
///         id -> BigInt,
///         name -> Text,
///         version -> Integer,
///     }
/// }
///
/// #[derive(Queryable, Selectable, Identifiable, AsChangeset, Versioned, Clone, Debug)]
/// #[diesel(table_name = plaid_items)]
/// pub struct PlaidItem { pub id: i64, pub name: String, pub version: i32 }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// diesel::sql_query("CREATE TABLE plaid_items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL)")
///     .execute(&mut conn)?;
/// diesel::insert_into(plaid_items::table)
///     .values((plaid_items::id.eq(1), plaid_items::name.eq("Checking"), plaid_items::version.eq(1)))
///     .execute(&mut conn)?;
///
/// let mut mine: PlaidItem = plaid_items::table.find(1).select(PlaidItem::as_select()).first(&mut conn)?;
/// let mut theirs = mine.clone();
///
/// mine.update_with_lock(&mut conn, plaid_items::name.eq("Everyday"))?;
/// assert_eq!(mine.version, 2);
///
/// let err = theirs.update_with_lock(&mut conn, plaid_items::name.eq("Bills")).unwrap_err();
/// assert!(matches!(err, OptimisticLockError::Conflict { expected_version: 1, .. }));
/// assert_eq!(theirs.version, 1, "unchanged after a failed write");
/// # Ok(())
/// # }
/// ```
pub use manna_derive::Versioned;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
