//! The error an encrypted column reports to Diesel.

use std::fmt;

/// Why an encrypted column could not be written or read.
///
/// Diesel receives it boxed, as a serialization or deserialization error.
/// It names the Rust type and the column context, and the kind of failure
/// (from [`manna_crypto::Error`]); never the plaintext or the stored value.
///
/// ```
/// use manna_diesel::ColumnError;
///
/// let err = ColumnError::read("AccessToken", "plaid_items.access_token", manna_crypto::Error::Decrypt);
/// assert_eq!(
///     err.to_string(),
///     "cannot decrypt AccessToken (context \"plaid_items.access_token\"): \
///      decryption failed: wrong key, wrong context, or tampered data"
/// );
/// ```
#[derive(Debug)]
pub struct ColumnError {
    direction: Direction,
    type_name: &'static str,
    context: &'static str,
    source: manna_crypto::Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Write,
    Read,
}

impl ColumnError {
    /// An error while encrypting a value of `type_name` for writing.
    pub fn write(
        type_name: &'static str,
        context: &'static str,
        source: manna_crypto::Error,
    ) -> Self {
        Self {
            direction: Direction::Write,
            type_name,
            context,
            source,
        }
    }

    /// An error while decrypting a stored value into `type_name`.
    pub fn read(
        type_name: &'static str,
        context: &'static str,
        source: manna_crypto::Error,
    ) -> Self {
        Self {
            direction: Direction::Read,
            type_name,
            context,
            source,
        }
    }

    /// The Rust type the column maps to.
    ///
    /// ```
    /// # use manna_diesel::ColumnError;
    /// let err = ColumnError::read("Ssn", "users.ssn", manna_crypto::Error::UnknownFormat);
    /// assert_eq!(err.type_name(), "Ssn");
    /// ```
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The column's context (its associated data).
    ///
    /// ```
    /// # use manna_diesel::ColumnError;
    /// let err = ColumnError::read("Ssn", "users.ssn", manna_crypto::Error::UnknownFormat);
    /// assert_eq!(err.context(), "users.ssn");
    /// ```
    pub fn context(&self) -> &'static str {
        self.context
    }

    /// The underlying crypto error (the kind of failure).
    ///
    /// ```
    /// # use manna_diesel::ColumnError;
    /// let err = ColumnError::read("Ssn", "users.ssn", manna_crypto::Error::UnknownFormat);
    /// assert!(matches!(err.crypto_error(), manna_crypto::Error::UnknownFormat));
    /// ```
    pub fn crypto_error(&self) -> &manna_crypto::Error {
        &self.source
    }
}

impl fmt::Display for ColumnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.direction {
            Direction::Write => "encrypt",
            Direction::Read => "decrypt",
        };
        write!(
            f,
            "cannot {verb} {} (context {:?}): {}",
            self.type_name, self.context, self.source
        )
    }
}

impl std::error::Error for ColumnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
