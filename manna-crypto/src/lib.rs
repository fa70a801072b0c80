//! # manna-crypto
//!
//! The crypto core of Manna: AES-256-GCM **envelopes** (format v1, see
//! `FORMAT.md` in the repository), a **keyring** with one primary key, previous
//! keys for rotation and legacy **Fernet** keys for reading what the old Python
//! backend wrote, and a process-wide default keyring loaded from the environment.
//!
//! ```
//! use manna_crypto::{Key, Keyring};
//!
//! let ring = Keyring::builder(Key::generate()?).build()?;
//! let stored = ring.encrypt_string("access-sandbox-8f2e", b"plaid_items.access_token")?;
//! assert!(stored.starts_with("manna:v1:"));
//! assert_eq!(ring.decrypt_string(&stored, b"plaid_items.access_token")?, "access-sandbox-8f2e");
//! # Ok::<(), manna_crypto::Error>(())
//! ```
//!
//! ## Security notes
//!
//! - Every encryption draws a fresh 96-bit nonce from the OS CSPRNG. With
//!   random nonces, NIST SP 800-38D limits one key to 2^32 encryptions; rotate
//!   well before that.
//! - The context is authenticated associated data: a value decrypts only under
//!   the context it was written with, so a ciphertext copied into another
//!   column fails instead of leaking. Changing a column's context therefore
//!   means re-encrypting its rows.
//! - Keys zeroize on drop, are not `Clone`, and print only their id.
//! - Fernet is read-only here; nothing writes it. The Fernet TTL is not
//!   applied: a TTL bounds how long a *message in transit* is accepted, while
//!   these tokens are data at rest that must stay readable until migrated.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod envelope;
mod error;
mod global;
mod key;
mod keyring;

pub use envelope::{classify, classify_bytes, Format, MIN_LEN, TEXT_PREFIX, VERSION};
pub use error::{Error, KeyProblem, Result};
pub use global::{
    decrypt_bytes, decrypt_string, default_keyring, encrypt_bytes, encrypt_string,
    generate_aes256_key, get_encryption_info, reload_default_keyring, set_default_keyring,
    with_default_keyring,
};
pub use key::{Key, KeyId, LegacyKey};
pub use keyring::{
    EncryptionInfo, Keyring, KeyringBuilder, ENV_LEGACY, ENV_MODE, ENV_PREVIOUS, ENV_PRIMARY,
};
