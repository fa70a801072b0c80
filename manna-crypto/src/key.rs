//! Key material: AES-256 keys, their ids, and legacy Fernet keys.

use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, KeyProblem, Result};

/// Label hashed with the key to derive its id (see FORMAT.md).
const KEY_ID_LABEL: &[u8] = b"manna/key-id/v1";

/// Standard-alphabet base64 that accepts input with or without padding.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The 4-byte identifier of an AES key: the first 4 bytes of
/// HMAC-SHA256(key, `"manna/key-id/v1"`).
///
/// It is stored in every envelope header, so a reader can pick the right key
/// without trying them all. It reveals nothing useful about the key. It prints
/// as 8 lowercase hex digits.
///
/// ```
/// use manna_crypto::Key;
///
/// let key = Key::from_bytes([7u8; 32]);
/// assert_eq!(key.id().to_string().len(), 8);
/// assert_eq!(key.id().as_bytes().len(), 4);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 4]);

impl KeyId {
    /// Wraps 4 raw bytes as a key id (for example, bytes 1..5 of an envelope).
    ///
    /// ```
    /// use manna_crypto::KeyId;
    /// assert_eq!(KeyId::from_bytes([0xde, 0xad, 0xbe, 0xef]).to_string(), "deadbeef");
    /// ```
    pub const fn from_bytes(bytes: [u8; 4]) -> Self {
        Self(bytes)
    }

    /// The 4 raw bytes.
    ///
    /// ```
    /// use manna_crypto::KeyId;
    /// assert_eq!(KeyId::from_bytes([1, 2, 3, 4]).as_bytes(), &[1, 2, 3, 4]);
    /// ```
    pub const fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A 256-bit AES key.
///
/// The bytes are zeroized when the key is dropped. `Key` is deliberately not
/// `Clone`, and its `Debug` output shows only the [`KeyId`]. The bytes are
/// reachable only through [`Key::expose_secret`] and [`Key::to_base64`].
///
/// ```
/// use manna_crypto::Key;
///
/// let key = Key::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
/// let shown = format!("{key:?}");
/// assert!(shown.starts_with("Key { id: "));
/// assert!(!shown.contains("AAEC"));
/// # Ok::<(), manna_crypto::Error>(())
/// ```
#[derive(ZeroizeOnDrop)]
pub struct Key {
    bytes: [u8; 32],
    #[zeroize(skip)]
    id: KeyId,
}

impl Key {
    /// Builds a key from 32 raw bytes.
    ///
    /// ```
    /// use manna_crypto::Key;
    /// let key = Key::from_bytes([0u8; 32]);
    /// assert_eq!(key.expose_secret(), &[0u8; 32]);
    /// ```
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let id = key_id(&bytes);
        Self { bytes, id }
    }

    /// Draws a new key from the operating system's CSPRNG.
    ///
    /// ```
    /// use manna_crypto::Key;
    /// let a = Key::generate()?;
    /// let b = Key::generate()?;
    /// assert_ne!(a.id(), b.id());
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| Error::Rng)?;
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// Parses a key from base64 of exactly 32 bytes: standard or url-safe
    /// alphabet, with or without padding, surrounding whitespace ignored.
    ///
    /// Errors never echo the input.
    ///
    /// ```
    /// use manna_crypto::Key;
    /// // url-safe, unpadded:
    /// let a = Key::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")?;
    /// // standard, padded:
    /// let b = Key::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
    /// assert_eq!(a.id(), b.id());
    /// assert!(Key::from_base64("not base64!").is_err());
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn from_base64(text: &str) -> Result<Self> {
        Self::parse(text, "argument")
    }

    /// Like [`Key::from_base64`], naming where the key came from in errors.
    pub(crate) fn parse(text: &str, source_name: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidKey {
            source_name: source_name.to_owned(),
            reason,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid(KeyProblem::Empty));
        }
        let normalized = to_alphabet(text, ['-', '_'], ['+', '/']);
        let decoded = Zeroizing::new(
            LENIENT_B64
                .decode(normalized.as_bytes())
                .map_err(|_| invalid(KeyProblem::NotBase64))?,
        );
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            invalid(KeyProblem::WrongLength {
                found: decoded.len(),
            })
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key's id, as written into every envelope it encrypts.
    ///
    /// ```
    /// use manna_crypto::Key;
    /// let key = Key::from_bytes([1u8; 32]);
    /// assert_eq!(key.id(), Key::from_bytes([1u8; 32]).id());
    /// ```
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The raw key bytes. Handle with care: do not log or copy them.
    ///
    /// ```
    /// use manna_crypto::Key;
    /// assert_eq!(Key::from_bytes([9u8; 32]).expose_secret()[0], 9);
    /// ```
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The key as standard padded base64, the form `MANNA_ENCRYPTION_KEY_AES256` takes.
    /// The returned string is zeroized when dropped.
    ///
    /// ```
    /// use manna_crypto::Key;
    /// let key = Key::generate()?;
    /// let again = Key::from_base64(&key.to_base64())?;
    /// assert_eq!(key.id(), again.id());
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.bytes))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &format_args!("{}", self.id))
            .finish_non_exhaustive()
    }
}

/// Rewrites the two characters in which base64's standard and url-safe
/// alphabets differ, into a string that is zeroized on drop.
fn to_alphabet(text: &str, from: [char; 2], to: [char; 2]) -> Zeroizing<String> {
    Zeroizing::new(
        text.chars()
            .map(|c| match c {
                c if c == from[0] => to[0],
                c if c == from[1] => to[1],
                c => c,
            })
            .collect(),
    )
}

fn key_id(bytes: &[u8; 32]) -> KeyId {
    // HMAC accepts keys of any length, so this cannot fail for 32 bytes.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(bytes) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts 32-byte keys"),
    };
    mac.update(KEY_ID_LABEL);
    let tag = mac.finalize().into_bytes();
    KeyId([tag[0], tag[1], tag[2], tag[3]])
}

/// A legacy Fernet key (decrypt only).
///
/// Parsed from url-safe base64 of 32 bytes, the format Python's
/// `cryptography.fernet.Fernet.generate_key()` produces. The key material is
/// zeroized on drop, and `Debug` prints `LegacyKey(<redacted>)`.
///
/// ```
/// use manna_crypto::LegacyKey;
///
/// let key = LegacyKey::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")?;
/// assert_eq!(format!("{key:?}"), "LegacyKey(<redacted>)");
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub struct LegacyKey(pub(crate) fernet::Fernet);

impl LegacyKey {
    /// Parses a Fernet key (url-safe or standard base64 of 32 bytes, padded or not).
    ///
    /// ```
    /// use manna_crypto::LegacyKey;
    /// assert!(LegacyKey::from_base64("too short").is_err());
    /// ```
    pub fn from_base64(text: &str) -> Result<Self> {
        Self::parse(text, "argument")
    }

    pub(crate) fn parse(text: &str, source_name: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::InvalidKey {
                source_name: source_name.to_owned(),
                reason: KeyProblem::Empty,
            });
        }
        let normalized = to_alphabet(text, ['+', '/'], ['-', '_']);
        fernet::Fernet::new(&normalized)
            .map(LegacyKey)
            .ok_or_else(|| Error::InvalidKey {
                source_name: source_name.to_owned(),
                reason: KeyProblem::NotFernet,
            })
    }
}

impl fmt::Debug for LegacyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LegacyKey(<redacted>)")
    }
}
