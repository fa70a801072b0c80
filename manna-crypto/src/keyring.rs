//! The keyring: one primary key, previous keys, legacy Fernet keys.

use std::sync::Once;

use aes_gcm::{Aes256Gcm, KeyInit};
use sha2::Digest;

use crate::envelope::{self, TextKind};
use crate::error::{Error, Result};
use crate::{Format, Key, KeyId, LegacyKey};

/// Environment variable holding the primary AES-256 key (base64 of 32 bytes).
pub const ENV_PRIMARY: &str = "MANNA_ENCRYPTION_KEY_AES256";
/// Environment variable holding previous AES-256 keys, comma-separated.
pub const ENV_PREVIOUS: &str = "MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS";
/// Environment variable holding legacy Fernet keys, comma-separated, newest first.
pub const ENV_LEGACY: &str = "MANNA_ENCRYPTION_KEY";
/// Environment variable naming the environment (`development`, `test`, ...).
pub const ENV_MODE: &str = "MANNA_ENV";

/// The label the development key is derived from. The key is public: it only
/// exists so that `MANNA_ENV=development` works without configuration.
const DEV_KEY_LABEL: &[u8] = b"manna/development-key/v1 (public, never use in production)";

static DEV_WARNING: Once = Once::new();

/// An AES key together with its cipher, whose key schedule is built once.
struct AesKey {
    key: Key,
    cipher: Aes256Gcm,
}

impl AesKey {
    fn new(key: Key) -> Self {
        let cipher = Aes256Gcm::new(key.expose_secret().into());
        Self { key, cipher }
    }
}

/// A set of keys: one primary AES-256 key that encrypts, previous AES keys
/// that still decrypt (chosen by key id), and legacy Fernet keys that decrypt
/// tokens written by the old Python backend (tried newest first).
///
/// Every AES key's cipher is built once, when the ring is built.
///
/// ```
/// use manna_crypto::{Key, Keyring};
///
/// let old = Key::generate()?;
/// let old_ring = Keyring::builder(Key::from_bytes(*old.expose_secret())).build()?;
/// let stored = old_ring.encrypt_string("4111 1111 1111 1111", b"cards.number")?;
///
/// // Rotate: a new primary, the old key kept for reading.
/// let ring = Keyring::builder(Key::generate()?).previous(old).build()?;
/// assert_eq!(ring.decrypt_string(&stored, b"cards.number")?, "4111 1111 1111 1111");
/// assert!(ring.needs_reencryption(&stored));
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub struct Keyring {
    primary: AesKey,
    previous: Vec<AesKey>,
    legacy: Vec<LegacyKey>,
    development: bool,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary.key.id())
            .field(
                "previous",
                &self.previous.iter().map(|k| k.key.id()).collect::<Vec<_>>(),
            )
            .field("legacy", &self.legacy.len())
            .field("development", &self.development)
            .finish()
    }
}

/// Builds a [`Keyring`]; see [`Keyring::builder`].
///
/// ```
/// use manna_crypto::{Key, Keyring, LegacyKey};
///
/// let ring = Keyring::builder(Key::generate()?)
///     .previous(Key::generate()?)
///     .legacy(LegacyKey::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")?)
///     .build()?;
/// assert_eq!(ring.previous_key_ids().len(), 1);
/// # Ok::<(), manna_crypto::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "call .build() to get a Keyring"]
pub struct KeyringBuilder {
    primary: Key,
    previous: Vec<Key>,
    legacy: Vec<LegacyKey>,
    development: bool,
}

impl KeyringBuilder {
    /// Adds a previous AES key: it decrypts envelopes carrying its key id but
    /// never encrypts.
    pub fn previous(mut self, key: Key) -> Self {
        self.previous.push(key);
        self
    }

    /// Adds a legacy Fernet key. Legacy keys are tried in the order added, so
    /// add the newest first (like Python's `MultiFernet`).
    pub fn legacy(mut self, key: LegacyKey) -> Self {
        self.legacy.push(key);
        self
    }

    /// Builds the ring, and every AES key schedule with it.
    ///
    /// Fails with [`Error::DuplicateKeyId`] when two AES keys share an id
    /// (the same key given twice, for example as primary and previous).
    pub fn build(self) -> Result<Keyring> {
        let mut seen = vec![self.primary.id()];
        for key in &self.previous {
            if seen.contains(&key.id()) {
                return Err(Error::DuplicateKeyId { key_id: key.id() });
            }
            seen.push(key.id());
        }
        Ok(Keyring {
            primary: AesKey::new(self.primary),
            previous: self.previous.into_iter().map(AesKey::new).collect(),
            legacy: self.legacy,
            development: self.development,
        })
    }
}

impl Keyring {
    /// Starts a keyring whose primary (encrypting) key is `primary`.
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// let text = ring.encrypt_string("secret", b"users.email")?;
    /// assert!(text.starts_with("manna:v1:"));
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn builder(primary: Key) -> KeyringBuilder {
        KeyringBuilder {
            primary,
            previous: Vec::new(),
            legacy: Vec::new(),
            development: false,
        }
    }

    /// Builds a keyring from the process environment:
    ///
    /// - `MANNA_ENCRYPTION_KEY_AES256`: the primary key, base64 of 32 bytes;
    /// - `MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS`: optional previous keys, comma-separated;
    /// - `MANNA_ENCRYPTION_KEY`: optional legacy Fernet keys, comma-separated, newest first;
    /// - `MANNA_ENV`: with `development` or `test` and no primary key, a fixed,
    ///   public development key is used and a warning is logged once.
    ///
    /// Otherwise a missing primary key is [`Error::MissingKey`], whose message
    /// says how to make one (`manna keygen`).
    ///
    /// ```
    /// // Equivalent to Keyring::from_env(), with the variables given explicitly:
    /// use manna_crypto::Keyring;
    /// let ring = Keyring::from_env_with(|name| match name {
    ///     "MANNA_ENV" => Some("test".into()),
    ///     _ => None,
    /// })?;
    /// assert!(ring.is_development());
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Like [`Keyring::from_env`], reading variables through `lookup`
    /// (useful in tests and for configuration sources other than the environment).
    ///
    /// ```
    /// use manna_crypto::{Error, Keyring};
    /// let err = Keyring::from_env_with(|_| None).unwrap_err();
    /// assert!(matches!(err, Error::MissingKey { .. }));
    /// assert!(err.to_string().contains("manna keygen"));
    /// ```
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let value = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let primary = value(ENV_PRIMARY);
        let development = primary.is_none()
            && matches!(
                value(ENV_MODE).as_deref().map(str::trim),
                Some("development" | "test")
            );
        let primary = match primary {
            Some(text) => Key::parse(&text, ENV_PRIMARY)?,
            None if development => {
                DEV_WARNING.call_once(|| {
                    tracing::warn!(
                        "{ENV_PRIMARY} is not set; using the public development key because \
                         {ENV_MODE} is development/test. Never use this outside development."
                    );
                });
                development_key()
            }
            None => return Err(Error::MissingKey { var: ENV_PRIMARY }),
        };
        let mut builder = Self::builder(primary);
        builder.development = development;
        if let Some(list) = value(ENV_PREVIOUS) {
            for (i, item) in split_list(&list) {
                builder = builder.previous(Key::parse(item, &format!("{ENV_PREVIOUS}[{i}]"))?);
            }
        }
        if let Some(list) = value(ENV_LEGACY) {
            for (i, item) in split_list(&list) {
                builder = builder.legacy(LegacyKey::parse(item, &format!("{ENV_LEGACY}[{i}]"))?);
            }
        }
        builder.build()
    }

    /// The id of the primary key, written into every new envelope.
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let key = Key::generate()?;
    /// let id = key.id();
    /// assert_eq!(Keyring::builder(key).build()?.primary_key_id(), id);
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn primary_key_id(&self) -> KeyId {
        self.primary.key.id()
    }

    /// The ids of the previous (decrypt-only) keys, in the order given.
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// assert!(ring.previous_key_ids().is_empty());
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn previous_key_ids(&self) -> Vec<KeyId> {
        self.previous.iter().map(|k| k.key.id()).collect()
    }

    /// Number of legacy Fernet keys.
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// assert_eq!(Keyring::builder(Key::generate()?).build()?.legacy_key_count(), 0);
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn legacy_key_count(&self) -> usize {
        self.legacy.len()
    }

    /// True when the primary key is the public development key.
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// assert!(!Keyring::builder(Key::generate()?).build()?.is_development());
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn is_development(&self) -> bool {
        self.development
    }

    /// Whether this ring holds an AES key with this id (primary or previous).
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// assert!(ring.has_key(ring.primary_key_id()));
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn has_key(&self, id: KeyId) -> bool {
        self.aes_key(id).is_some()
    }

    fn aes_key(&self, id: KeyId) -> Option<&AesKey> {
        if self.primary.key.id() == id {
            return Some(&self.primary);
        }
        self.previous.iter().find(|k| k.key.id() == id)
    }

    /// Encrypts UTF-8 text to a text envelope (`manna:v1:...`) under the
    /// primary key, bound to `context` (associated data; `b""` for none).
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// let a = ring.encrypt_string("same", b"t.c")?;
    /// let b = ring.encrypt_string("same", b"t.c")?;
    /// assert_ne!(a, b); // a fresh random nonce every time
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn encrypt_string(&self, plaintext: &str, context: &[u8]) -> Result<String> {
        self.encrypt_to_text(plaintext.as_bytes(), context)
    }

    /// Encrypts arbitrary bytes to a text envelope.
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// let text = ring.encrypt_to_text(&[0, 159, 146, 150], b"")?;
    /// assert_eq!(ring.decrypt_text(&text, b"")?, vec![0, 159, 146, 150]);
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn encrypt_to_text(&self, plaintext: &[u8], context: &[u8]) -> Result<String> {
        let p = &self.primary;
        envelope::seal_text(&p.cipher, p.key.id(), plaintext, context)
    }

    /// Encrypts bytes to a binary envelope (starting with `0x01`).
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// let bin = ring.encrypt_bytes(b"123-45-6789", b"users.ssn")?;
    /// assert_eq!(bin[0], 0x01);
    /// assert_eq!(bin.len(), 33 + 11);
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn encrypt_bytes(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let p = &self.primary;
        envelope::seal_binary(&p.cipher, p.key.id(), plaintext, context)
    }

    /// Decrypts a text envelope, or a legacy Fernet token, to UTF-8 text.
    ///
    /// ```
    /// use manna_crypto::{Error, Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// let text = ring.encrypt_string("secret", b"a.b")?;
    /// assert_eq!(ring.decrypt_string(&text, b"a.b")?, "secret");
    /// // Another context does not decrypt it:
    /// assert!(matches!(ring.decrypt_string(&text, b"a.c"), Err(Error::Decrypt)));
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn decrypt_string(&self, text: &str, context: &[u8]) -> Result<String> {
        String::from_utf8(self.decrypt_text(text, context)?).map_err(|e| {
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            Error::NotUtf8
        })
    }

    /// Decrypts a text envelope, or a legacy Fernet token, to bytes.
    ///
    /// Fernet tokens are checked against every legacy key, newest first. The
    /// Fernet TTL is not applied: stored data does not expire. (Tokens more
    /// than 60 seconds in the future are still refused, as Fernet requires.)
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring, LegacyKey};
    /// let ring = Keyring::builder(Key::generate()?)
    ///     .legacy(LegacyKey::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")?)
    ///     .build()?;
    /// let token = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    /// assert_eq!(ring.decrypt_text(token, b"")?, b"hello");
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn decrypt_text(&self, text: &str, context: &[u8]) -> Result<Vec<u8>> {
        match envelope::text_kind(text)? {
            TextKind::V1(body) => self.open(envelope::decode_text(body)?, context),
            TextKind::Fernet => self.decrypt_fernet(text),
        }
    }

    /// Decrypts a binary envelope. For columns migrated from the Python
    /// backend it also accepts a text envelope or a Fernet token stored as bytes.
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// let bin = ring.encrypt_bytes(b"\x00\xff", b"")?;
    /// assert_eq!(ring.decrypt_bytes(&bin, b"")?, b"\x00\xff");
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn decrypt_bytes(&self, value: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        if value.starts_with(b"manna:") || envelope::is_fernet(value) {
            let text = std::str::from_utf8(value).map_err(|_| Error::UnknownFormat)?;
            return self.decrypt_text(text, context);
        }
        self.open(value.to_vec(), context)
    }

    /// Opens a binary envelope under the key its header names; the buffer
    /// becomes the plaintext.
    fn open(&self, mut buf: Vec<u8>, context: &[u8]) -> Result<Vec<u8>> {
        let key_id = envelope::parse_header(&buf)?;
        let key = self.aes_key(key_id).ok_or(Error::UnknownKeyId { key_id })?;
        envelope::open_in_place(&key.cipher, &mut buf, context)?;
        Ok(buf)
    }

    fn decrypt_fernet(&self, token: &str) -> Result<Vec<u8>> {
        if self.legacy.is_empty() {
            return Err(Error::NoLegacyKeys);
        }
        self.legacy
            .iter()
            .find_map(|k| k.0.decrypt(token).ok())
            .ok_or(Error::LegacyDecrypt)
    }

    /// True when a stored text value should be rewritten under the primary
    /// key: a legacy Fernet token, or a v1 envelope under any other key.
    /// False for a v1 envelope under the primary key, and for anything
    /// unrecognised (use [`classify`](crate::classify) to tell those apart).
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// let current = ring.encrypt_string("x", b"")?;
    /// assert!(!ring.needs_reencryption(&current));
    /// assert!(ring.needs_reencryption("gAAAAABlZXhhbXBsZQ"));
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn needs_reencryption(&self, text: &str) -> bool {
        self.format_needs_reencryption(crate::classify(text))
    }

    /// [`Keyring::needs_reencryption`] for a binary column value.
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// let bin = ring.encrypt_bytes(b"x", b"")?;
    /// assert!(!ring.needs_reencryption_bytes(&bin));
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn needs_reencryption_bytes(&self, value: &[u8]) -> bool {
        self.format_needs_reencryption(crate::classify_bytes(value))
    }

    fn format_needs_reencryption(&self, format: Format) -> bool {
        match format {
            Format::Fernet => true,
            Format::V1 { key_id } => key_id != self.primary_key_id(),
            Format::Unrecognized => false,
        }
    }

    /// A description of this ring that is safe to print: ids and counts, never key bytes.
    ///
    /// ```
    /// use manna_crypto::{Key, Keyring};
    /// let ring = Keyring::builder(Key::generate()?).build()?;
    /// let info = ring.info();
    /// assert_eq!(info.algorithm, "AES-256-GCM");
    /// assert_eq!(info.primary_key_id, ring.primary_key_id().to_string());
    /// # Ok::<(), manna_crypto::Error>(())
    /// ```
    pub fn info(&self) -> EncryptionInfo {
        EncryptionInfo {
            algorithm: "AES-256-GCM",
            format: envelope::TEXT_PREFIX.trim_end_matches(':'),
            primary_key_id: self.primary_key_id().to_string(),
            previous_key_ids: self
                .previous_key_ids()
                .iter()
                .map(ToString::to_string)
                .collect(),
            legacy_key_count: self.legacy.len(),
            development_key: self.development,
        }
    }
}

/// What [`get_encryption_info`](crate::get_encryption_info) and `manna info` report.
/// Serializable; it never holds key bytes.
///
/// ```
/// use manna_crypto::{Key, Keyring};
/// let info = Keyring::builder(Key::generate()?).build()?.info();
/// let json = serde_json::to_string(&info).unwrap();
/// assert!(json.contains("\"algorithm\":\"AES-256-GCM\""));
/// # Ok::<(), manna_crypto::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct EncryptionInfo {
    /// Always `AES-256-GCM`.
    pub algorithm: &'static str,
    /// The envelope format written: `manna:v1`.
    pub format: &'static str,
    /// Id of the primary key (8 hex digits).
    pub primary_key_id: String,
    /// Ids of the previous keys.
    pub previous_key_ids: Vec<String>,
    /// Number of legacy Fernet keys.
    pub legacy_key_count: usize,
    /// True when the primary key is the public development key.
    pub development_key: bool,
}

fn development_key() -> Key {
    let digest = sha2::Sha256::digest(DEV_KEY_LABEL);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&digest);
    Key::from_bytes(bytes)
}

fn split_list(list: &str) -> impl Iterator<Item = (usize, &str)> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
}
