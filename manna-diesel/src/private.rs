//! What the derives expand to. Not public API: names and signatures here may
//! change in any release.
//!
//! Generated code reaches everything through `::manna_diesel::__private`, so
//! it does not depend on what the user imported, and it never contains a
//! `cfg`: backend differences live behind [`EncryptedBackend`], implemented
//! here under each backend feature.

pub use ::diesel;
pub use ::manna_crypto;

use diesel::backend::Backend;
use diesel::serialize::{self, IsNull, Output};

use crate::ColumnError;

pub use crate::migrate::__private::{Bind, Dialect, PageRow, Rewrite, Statements, Stored};
pub use crate::versioned::{CountRows, From, LockedDelete, LockedUpdate, RowCounter};

/// How a backend takes an owned encrypted value as a bind parameter.
///
/// PostgreSQL and MySQL write into `Output` through `std::io::Write`; SQLite
/// needs an owned value (`set_value`).
#[diagnostic::on_unimplemented(
    message = "manna-diesel has no encrypted-column support for `{Self}`",
    note = "enable the manna-diesel feature for this backend: `sqlite`, `postgres` or `mysql`"
)]
pub trait EncryptedBackend: Backend {
    /// Writes a text envelope.
    fn write_text(value: String, out: &mut Output<'_, '_, Self>) -> serialize::Result;
    /// Writes a binary envelope.
    fn write_binary(value: Vec<u8>, out: &mut Output<'_, '_, Self>) -> serialize::Result;
}

/// PostgreSQL and MySQL take bind values through `std::io::Write`.
#[cfg(any(feature = "postgres", feature = "mysql"))]
macro_rules! write_through_io {
    ($backend:ty) => {
        impl EncryptedBackend for $backend {
            fn write_text(value: String, out: &mut Output<'_, '_, Self>) -> serialize::Result {
                std::io::Write::write_all(out, value.as_bytes())?;
                Ok(IsNull::No)
            }
            fn write_binary(value: Vec<u8>, out: &mut Output<'_, '_, Self>) -> serialize::Result {
                std::io::Write::write_all(out, &value)?;
                Ok(IsNull::No)
            }
        }
    };
}

#[cfg(feature = "postgres")]
write_through_io!(diesel::pg::Pg);

#[cfg(feature = "mysql")]
write_through_io!(diesel::mysql::Mysql);

#[cfg(feature = "sqlite")]
impl EncryptedBackend for diesel::sqlite::Sqlite {
    fn write_text(value: String, out: &mut Output<'_, '_, Self>) -> serialize::Result {
        out.set_value(value);
        Ok(IsNull::No)
    }
    fn write_binary(value: Vec<u8>, out: &mut Output<'_, '_, Self>) -> serialize::Result {
        out.set_value(value);
        Ok(IsNull::No)
    }
}

/// The plaintext types an encrypted newtype may wrap.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the plaintext of an encrypted column",
    note = "#[derive(Encrypted)] wraps `String` or `Vec<u8>`"
)]
pub trait Plaintext: Sized {
    /// The bytes to encrypt.
    fn plain_bytes(&self) -> &[u8];
    /// Rebuilds the value from decrypted bytes.
    fn from_plain_bytes(bytes: Vec<u8>) -> Result<Self, manna_crypto::Error>;
}

impl Plaintext for String {
    fn plain_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
    fn from_plain_bytes(bytes: Vec<u8>) -> Result<Self, manna_crypto::Error> {
        String::from_utf8(bytes).map_err(|_| manna_crypto::Error::NotUtf8)
    }
}

impl Plaintext for Vec<u8> {
    fn plain_bytes(&self) -> &[u8] {
        self
    }
    fn from_plain_bytes(bytes: Vec<u8>) -> Result<Self, manna_crypto::Error> {
        Ok(bytes)
    }
}

/// Facts the derive records about an encrypted newtype.
pub trait EncryptedColumn {
    /// The Rust type's name, for error messages.
    const TYPE_NAME: &'static str;
    /// The context bound to every value as associated data.
    const CONTEXT: &'static str;
}

/// Runs `f` with the default keyring and `T`'s context; a failure becomes
/// the [`ColumnError`] that `error` (`ColumnError::write` or `::read`) makes.
fn with_column<T: EncryptedColumn, R>(
    error: fn(&'static str, &'static str, manna_crypto::Error) -> ColumnError,
    f: impl FnOnce(&manna_crypto::Keyring, &[u8]) -> Result<R, manna_crypto::Error>,
) -> Result<R, ColumnError> {
    manna_crypto::with_default_keyring(|ring| f(ring, T::CONTEXT.as_bytes()))
        .map_err(|e| error(T::TYPE_NAME, T::CONTEXT, e))
}

/// Encrypts `plain` to a text envelope and binds it.
pub fn to_sql_text<T: EncryptedColumn, DB: EncryptedBackend>(
    plain: &impl Plaintext,
    out: &mut Output<'_, '_, DB>,
) -> serialize::Result {
    let text = with_column::<T, _>(ColumnError::write, |ring, ctx| {
        ring.encrypt_to_text(plain.plain_bytes(), ctx)
    })?;
    DB::write_text(text, out)
}

/// Encrypts `plain` to a binary envelope and binds it.
pub fn to_sql_binary<T: EncryptedColumn, DB: EncryptedBackend>(
    plain: &impl Plaintext,
    out: &mut Output<'_, '_, DB>,
) -> serialize::Result {
    let bin = with_column::<T, _>(ColumnError::write, |ring, ctx| {
        ring.encrypt_bytes(plain.plain_bytes(), ctx)
    })?;
    DB::write_binary(bin, out)
}

/// Decrypts a stored text value: a v1 text envelope or a legacy Fernet token.
pub fn from_sql_text<T: EncryptedColumn, P: Plaintext>(
    stored: &str,
) -> diesel::deserialize::Result<P> {
    Ok(with_column::<T, _>(ColumnError::read, |ring, ctx| {
        ring.decrypt_text(stored, ctx).and_then(P::from_plain_bytes)
    })?)
}

/// Decrypts a stored binary value: a v1 binary envelope (or a text envelope
/// or Fernet token stored as bytes).
pub fn from_sql_binary<T: EncryptedColumn, P: Plaintext>(
    stored: &[u8],
) -> diesel::deserialize::Result<P> {
    Ok(with_column::<T, _>(ColumnError::read, |ring, ctx| {
        ring.decrypt_bytes(stored, ctx)
            .and_then(P::from_plain_bytes)
    })?)
}
