//! The process-wide default keyring and the convenience functions over it.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::error::Result;
use crate::{EncryptionInfo, Key, Keyring};

static DEFAULT: ArcSwapOption<Keyring> = ArcSwapOption::const_empty();
static INIT: Mutex<()> = Mutex::new(());

/// The process-wide default keyring.
///
/// On first use it is built from the environment ([`Keyring::from_env`]),
/// unless one was installed with [`set_default_keyring`]. A configuration
/// error is returned, not cached: fix the environment and the next call
/// succeeds.
///
/// ```
/// use manna_crypto::{default_keyring, set_default_keyring, Key, Keyring};
/// set_default_keyring(Keyring::builder(Key::generate()?).build()?);
/// let ring = default_keyring()?;
/// assert_eq!(ring.info().algorithm, "AES-256-GCM");
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn default_keyring() -> Result<Arc<Keyring>> {
    if let Some(ring) = DEFAULT.load_full() {
        return Ok(ring);
    }
    // One thread builds; the others wait and then see its ring.
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(ring) = DEFAULT.load_full() {
        return Ok(ring);
    }
    let ring = Arc::new(Keyring::from_env()?);
    DEFAULT.store(Some(Arc::clone(&ring)));
    Ok(ring)
}

/// Runs `f` with the default keyring without touching its reference count:
/// the cheap path used by the convenience functions and the Diesel types.
///
/// ```
/// use manna_crypto::{set_default_keyring, with_default_keyring, Key, Keyring};
/// set_default_keyring(Keyring::builder(Key::generate()?).build()?);
/// let text = with_default_keyring(|ring| ring.encrypt_string("x", b""))?;
/// assert!(text.starts_with("manna:v1:"));
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn with_default_keyring<T>(f: impl FnOnce(&Keyring) -> Result<T>) -> Result<T> {
    {
        let guard = DEFAULT.load();
        if let Some(ring) = guard.as_deref() {
            return f(ring);
        }
    }
    let ring = default_keyring()?;
    f(&ring)
}

/// Installs `ring` as the process-wide default, replacing any previous one
/// atomically: readers see either the old ring or the new one, never a mix.
/// Use it at start-up, or at run time to load a rotated key set without a
/// restart. Returns the ring it replaced.
///
/// ```
/// use manna_crypto::{set_default_keyring, Key, Keyring};
/// let first = Keyring::builder(Key::generate()?).build()?;
/// let first_id = first.primary_key_id();
/// set_default_keyring(first);
/// let replaced = set_default_keyring(Keyring::builder(Key::generate()?).build()?);
/// assert!(replaced.is_some());
/// # let _ = first_id;
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn set_default_keyring(ring: Keyring) -> Option<Arc<Keyring>> {
    DEFAULT.swap(Some(Arc::new(ring)))
}

/// Rebuilds the default keyring from the environment and installs it. On an
/// error the current ring stays in place.
///
/// ```no_run
/// // After the deployment updated MANNA_ENCRYPTION_KEY_AES256 and
/// // MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS:
/// manna_crypto::reload_default_keyring()?;
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn reload_default_keyring() -> Result<()> {
    set_default_keyring(Keyring::from_env()?);
    Ok(())
}

/// Generates a new AES-256 key: standard base64 of 32 bytes from the OS CSPRNG,
/// the form `MANNA_ENCRYPTION_KEY_AES256` takes.
///
/// ```
/// let key = manna_crypto::generate_aes256_key()?;
/// assert_eq!(key.len(), 44);
/// assert!(manna_crypto::Key::from_base64(&key).is_ok());
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn generate_aes256_key() -> Result<String> {
    Ok(Key::generate()?.to_base64().to_string())
}

/// Encrypts text with the default keyring; see [`Keyring::encrypt_string`].
///
/// ```
/// # manna_crypto::set_default_keyring(manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?);
/// let stored = manna_crypto::encrypt_string("access-sandbox-123", b"plaid_items.access_token")?;
/// let plain = manna_crypto::decrypt_string(&stored, b"plaid_items.access_token")?;
/// assert_eq!(plain, "access-sandbox-123");
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn encrypt_string(plaintext: &str, context: &[u8]) -> Result<String> {
    with_default_keyring(|ring| ring.encrypt_string(plaintext, context))
}

/// Decrypts a text envelope or Fernet token with the default keyring; see
/// [`Keyring::decrypt_string`].
///
/// ```
/// # manna_crypto::set_default_keyring(manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?);
/// let err = manna_crypto::decrypt_string("manna:v1:@@", b"").unwrap_err();
/// assert_eq!(err.to_string(), "envelope is not valid base64url");
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn decrypt_string(text: &str, context: &[u8]) -> Result<String> {
    with_default_keyring(|ring| ring.decrypt_string(text, context))
}

/// Encrypts bytes to a binary envelope with the default keyring; see
/// [`Keyring::encrypt_bytes`].
///
/// ```
/// # manna_crypto::set_default_keyring(manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?);
/// let bin = manna_crypto::encrypt_bytes(b"\x01\x02", b"files.blob")?;
/// assert_eq!(manna_crypto::decrypt_bytes(&bin, b"files.blob")?, b"\x01\x02");
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn encrypt_bytes(plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>> {
    with_default_keyring(|ring| ring.encrypt_bytes(plaintext, context))
}

/// Decrypts a binary envelope with the default keyring; see [`Keyring::decrypt_bytes`].
///
/// ```
/// # manna_crypto::set_default_keyring(manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?);
/// assert!(manna_crypto::decrypt_bytes(b"\x01short", b"").is_err());
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn decrypt_bytes(value: &[u8], context: &[u8]) -> Result<Vec<u8>> {
    with_default_keyring(|ring| ring.decrypt_bytes(value, context))
}

/// Describes the default keyring: algorithm, key ids, legacy key count and
/// whether the development key is in use. Never any key bytes.
///
/// ```
/// # manna_crypto::set_default_keyring(manna_crypto::Keyring::builder(manna_crypto::Key::generate()?).build()?);
/// let info = manna_crypto::get_encryption_info()?;
/// assert!(!info.development_key);
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn get_encryption_info() -> Result<EncryptionInfo> {
    with_default_keyring(|ring| Ok(ring.info()))
}
