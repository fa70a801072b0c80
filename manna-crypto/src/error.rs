//! The one error type of this crate.

use crate::KeyId;

/// Everything that can go wrong in `manna-crypto`.
///
/// Messages never carry plaintext, ciphertext or key bytes: they name the
/// kind of failure and, where it helps, a key id or an environment variable.
/// Wrong key, wrong context and tampering are deliberately one variant,
/// [`Error::Decrypt`], so an attacker learns nothing from which one it was.
///
/// ```
/// use manna_crypto::{Error, Key, Keyring};
///
/// let ring = Keyring::builder(Key::generate()?).build()?;
/// let err = ring.decrypt_string("not an envelope", b"").unwrap_err();
/// assert!(matches!(err, Error::UnknownFormat));
/// # Ok::<(), manna_crypto::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No primary key is configured.
    #[error(
        "no encryption key configured: set {var} to the base64 of 32 random bytes \
         (make one with `manna keygen`), or set MANNA_ENV=development for a \
         throw-away development key"
    )]
    MissingKey {
        /// The environment variable that should hold the key.
        var: &'static str,
    },

    /// A key could not be parsed. The input itself is never echoed.
    #[error("invalid key in {source_name}: {reason}")]
    InvalidKey {
        /// Where the key came from (an environment variable, or `argument`).
        source_name: String,
        /// What was wrong with it.
        reason: KeyProblem,
    },

    /// Two keys in one keyring have the same key id.
    #[error("key id {key_id} appears twice in the keyring; remove the duplicate key")]
    DuplicateKeyId {
        /// The repeated key id.
        key_id: KeyId,
    },

    /// The input is neither a `manna:v1:` envelope nor a Fernet token.
    #[error("input is neither a manna envelope nor a Fernet token")]
    UnknownFormat,

    /// The envelope names a format version this crate does not know.
    #[error("unsupported envelope version {version}")]
    UnsupportedVersion {
        /// The version found (the byte, or the number after `manna:v`).
        version: u32,
    },

    /// The envelope is shorter than the 33-byte minimum.
    #[error("envelope too short: {len} bytes, at least 33 required")]
    Truncated {
        /// Length of the binary form that was found.
        len: usize,
    },

    /// The text envelope is not valid unpadded base64url.
    #[error("envelope is not valid base64url")]
    InvalidBase64,

    /// The envelope was written under a key that is not in the keyring.
    #[error("envelope key id {key_id} is not in the keyring (add the key to MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS)")]
    UnknownKeyId {
        /// The key id found in the envelope header.
        key_id: KeyId,
    },

    /// Authentication failed: wrong key, wrong context or tampered data.
    #[error("decryption failed: wrong key, wrong context, or tampered data")]
    Decrypt,

    /// A Fernet token was found but the keyring has no legacy keys.
    #[error(
        "input is a legacy Fernet token but no legacy key is configured (set MANNA_ENCRYPTION_KEY)"
    )]
    NoLegacyKeys,

    /// A Fernet token did not verify under any legacy key.
    #[error("legacy Fernet token did not decrypt under any legacy key")]
    LegacyDecrypt,

    /// Decryption succeeded but the plaintext is not UTF-8 (from the `*_string` functions).
    #[error("decrypted value is not valid UTF-8")]
    NotUtf8,

    /// The plaintext or context is too large for AES-GCM.
    #[error("plaintext too large to encrypt")]
    TooLarge,

    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed")]
    Rng,
}

/// Why a key was rejected.
///
/// ```
/// use manna_crypto::{Error, Key, KeyProblem};
///
/// let err = Key::from_base64("c2hvcnQ=").unwrap_err();
/// assert!(matches!(err, Error::InvalidKey { reason: KeyProblem::WrongLength { found: 5 }, .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// Not valid base64 (standard or url-safe, padded or not).
    NotBase64,
    /// Decoded to the wrong number of bytes.
    WrongLength {
        /// Number of bytes the input decoded to.
        found: usize,
    },
    /// Not a valid Fernet key (base64url of 32 bytes).
    NotFernet,
    /// Empty.
    Empty,
}

impl std::fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyProblem::NotBase64 => f.write_str("not valid base64"),
            KeyProblem::WrongLength { found } => {
                write!(f, "decodes to {found} bytes, expected 32")
            }
            KeyProblem::NotFernet => {
                f.write_str("not a Fernet key (expected url-safe base64 of 32 bytes)")
            }
            KeyProblem::Empty => f.write_str("empty"),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
