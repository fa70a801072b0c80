//! The version 1 envelope: layout, sealing and opening. See FORMAT.md.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, Nonce, Tag};
// base64-simd, not the base64 crate, on the hot path: on 97 bytes it encodes
// and decodes 3-4x faster here, which is most of the envelope's overhead.
use base64_simd::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};
use crate::KeyId;

/// Format version byte of envelope v1.
pub const VERSION: u8 = 0x01;
/// Prefix of the text form of envelope v1.
pub const TEXT_PREFIX: &str = "manna:v1:";
/// Bytes 0..5: version and key id. Also the first part of the associated data.
pub(crate) const HEADER_LEN: usize = 5;
pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
/// The smallest binary envelope: header, nonce and tag around an empty plaintext.
pub const MIN_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
const CT_START: usize = HEADER_LEN + NONCE_LEN;

/// Plaintexts up to this size are sealed in a stack buffer, so a text
/// envelope costs one heap allocation (the returned `String`).
const STACK_SEAL: usize = 512;
/// Associated data up to this size is assembled on the stack.
const STACK_AAD: usize = 128;

/// What a stored value is, judged by its form alone (no key is tried).
///
/// ```
/// use manna_crypto::{classify, Format};
///
/// assert_eq!(classify("gAAAAABl..."), Format::Fernet);
/// assert_eq!(classify("plain text"), Format::Unrecognized);
/// assert!(matches!(classify("manna:v1:AQAAAAAA"), Format::V1 { .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// A v1 envelope; `key_id` is read from its header (not yet authenticated).
    V1 {
        /// The key id in the header.
        key_id: KeyId,
    },
    /// A legacy Fernet token (it starts with `gAAAAA`, version byte `0x80`).
    Fernet,
    /// Neither.
    Unrecognized,
}

/// Classifies a text value: a v1 text envelope, a Fernet token, or neither.
///
/// ```
/// use manna_crypto::{classify, Format, Key, Keyring};
///
/// let ring = Keyring::builder(Key::generate()?).build()?;
/// let text = ring.encrypt_string("hi", b"")?;
/// assert_eq!(classify(&text), Format::V1 { key_id: ring.primary_key_id() });
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn classify(text: &str) -> Format {
    classify_bytes(text.as_bytes())
}

/// Classifies a stored binary value: a v1 binary envelope, or a text
/// envelope or Fernet token stored as bytes, or neither.
///
/// ```
/// use manna_crypto::{classify_bytes, Format, Key, Keyring};
///
/// let ring = Keyring::builder(Key::generate()?).build()?;
/// let bin = ring.encrypt_bytes(b"hi", b"")?;
/// assert_eq!(classify_bytes(&bin), Format::V1 { key_id: ring.primary_key_id() });
/// assert_eq!(classify_bytes(b"\x02abc"), Format::Unrecognized);
/// # Ok::<(), manna_crypto::Error>(())
/// ```
pub fn classify_bytes(value: &[u8]) -> Format {
    if let Some(rest) = value.strip_prefix(TEXT_PREFIX.as_bytes()) {
        // 8 base64 characters hold the first 6 bytes; the header is 5.
        let mut head = [0u8; 6];
        let decoded = rest.get(..8).map(|p| {
            URL_SAFE_NO_PAD
                .decode(p, base64_simd::Out::from_slice(&mut head))
                .map(|h| h.len())
        });
        return match decoded {
            Some(Ok(6)) if head[0] == VERSION => Format::V1 {
                key_id: KeyId::from_bytes([head[1], head[2], head[3], head[4]]),
            },
            _ => Format::Unrecognized,
        };
    }
    if is_fernet(value) {
        return Format::Fernet;
    }
    match value {
        [VERSION, a, b, c, d, ..] if value.len() >= MIN_LEN => Format::V1 {
            key_id: KeyId::from_bytes([*a, *b, *c, *d]),
        },
        _ => Format::Unrecognized,
    }
}

/// A Fernet token is base64url of `0x80 || timestamp(8) || ...`; any
/// timestamp before the year 36812 makes it start with `gAAAAA`.
pub(crate) fn is_fernet(value: &[u8]) -> bool {
    value.starts_with(b"gAAAAA")
}

/// Runs `f` with the associated data `header || context`, built on the stack when small.
fn with_aad<R>(header: &[u8], context: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    fn on_stack<const N: usize, R>(header: &[u8], context: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
        let len = header.len() + context.len();
        let mut buf = [0u8; N];
        buf[..header.len()].copy_from_slice(header);
        buf[header.len()..len].copy_from_slice(context);
        f(&buf[..len])
    }
    match header.len() + context.len() {
        0..=48 => on_stack::<48, R>(header, context, f),
        49..=STACK_AAD => on_stack::<STACK_AAD, R>(header, context, f),
        len => {
            let mut buf = Vec::with_capacity(len);
            buf.extend_from_slice(header);
            buf.extend_from_slice(context);
            f(&buf)
        }
    }
}

/// Writes a binary envelope of `plaintext` into `out`, which must be exactly
/// `MIN_LEN + plaintext.len()` bytes.
fn seal_into(
    cipher: &Aes256Gcm,
    key_id: KeyId,
    plaintext: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<()> {
    debug_assert_eq!(out.len(), MIN_LEN + plaintext.len());
    let (header, rest) = out.split_at_mut(HEADER_LEN);
    header[0] = VERSION;
    header[1..].copy_from_slice(key_id.as_bytes());
    let (nonce_out, rest) = rest.split_at_mut(NONCE_LEN);
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| Error::Rng)?;
    nonce_out.copy_from_slice(&nonce);
    let (body, tag_out) = rest.split_at_mut(plaintext.len());
    let nonce = Nonce::from(nonce);
    let buf = InOutBuf::new(plaintext, body).map_err(|_| Error::TooLarge)?;
    let tag = with_aad(header, context, |aad| {
        cipher.encrypt_inout_detached(&nonce, aad, buf)
    })
    .map_err(|_| Error::TooLarge)?;
    tag_out.copy_from_slice(&tag);
    Ok(())
}

/// Seals to the binary form.
pub(crate) fn seal_binary(
    cipher: &Aes256Gcm,
    key_id: KeyId,
    plaintext: &[u8],
    context: &[u8],
) -> Result<Vec<u8>> {
    let mut out = vec![0u8; MIN_LEN + plaintext.len()];
    seal_into(cipher, key_id, plaintext, context, &mut out)?;
    Ok(out)
}

/// Seals to the text form: one pre-sized `String`, and for small values no
/// other heap allocation.
pub(crate) fn seal_text(
    cipher: &Aes256Gcm,
    key_id: KeyId,
    plaintext: &[u8],
    context: &[u8],
) -> Result<String> {
    let n = MIN_LEN + plaintext.len();
    let encoded_len = URL_SAFE_NO_PAD.encoded_length(n);
    let mut text = String::with_capacity(TEXT_PREFIX.len() + encoded_len);
    text.push_str(TEXT_PREFIX);
    if n <= STACK_SEAL {
        let mut buf = [0u8; STACK_SEAL];
        seal_into(cipher, key_id, plaintext, context, &mut buf[..n])?;
        URL_SAFE_NO_PAD.encode_append(&buf[..n], &mut text);
    } else {
        let buf = seal_binary(cipher, key_id, plaintext, context)?;
        URL_SAFE_NO_PAD.encode_append(&buf, &mut text);
    }
    Ok(text)
}

/// Checks the length and version of a binary envelope and returns its key id.
pub(crate) fn parse_header(bin: &[u8]) -> Result<KeyId> {
    if bin.len() < MIN_LEN {
        // Only a wrong version is worth reporting before the length.
        if let Some(&v) = bin.first() {
            if v != VERSION {
                return Err(Error::UnsupportedVersion { version: v.into() });
            }
        }
        return Err(Error::Truncated { len: bin.len() });
    }
    if bin[0] != VERSION {
        return Err(Error::UnsupportedVersion {
            version: bin[0].into(),
        });
    }
    Ok(KeyId::from_bytes([bin[1], bin[2], bin[3], bin[4]]))
}

/// Decodes the base64 body of a text envelope (what follows the prefix)
/// into its binary form.
pub(crate) fn decode_text(body: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode_to_vec(body)
        .map_err(|_| Error::InvalidBase64)
}

/// Opens a binary envelope held in `buf` in place; on success `buf` holds
/// exactly the plaintext. The header must already have been checked.
pub(crate) fn open_in_place(cipher: &Aes256Gcm, buf: &mut Vec<u8>, context: &[u8]) -> Result<()> {
    let n = buf.len();
    let (head, rest) = buf.split_at_mut(CT_START);
    let (body, tag) = rest.split_at_mut(n - MIN_LEN);
    let tag = Tag::try_from(&*tag).map_err(|_| Error::Truncated { len: n })?;
    let nonce: Nonce<_> =
        Nonce::try_from(&head[HEADER_LEN..]).map_err(|_| Error::Truncated { len: n })?;
    with_aad(&head[..HEADER_LEN], context, |aad| {
        cipher.decrypt_inout_detached(&nonce, aad, body.into(), &tag)
    })
    .map_err(|_| Error::Decrypt)?;
    buf.copy_within(CT_START..n - TAG_LEN, 0);
    buf.truncate(n - MIN_LEN);
    Ok(())
}

/// Splits a text value into its envelope body, or says what else it is.
pub(crate) enum TextKind<'a> {
    V1(&'a str),
    Fernet,
}

pub(crate) fn text_kind(text: &str) -> Result<TextKind<'_>> {
    if let Some(body) = text.strip_prefix(TEXT_PREFIX) {
        return Ok(TextKind::V1(body));
    }
    if let Some(rest) = text.strip_prefix("manna:v") {
        let version = rest.split(':').next().and_then(|v| v.parse::<u32>().ok());
        return match version {
            Some(version) => Err(Error::UnsupportedVersion { version }),
            None => Err(Error::UnknownFormat),
        };
    }
    if is_fernet(text.as_bytes()) {
        return Ok(TextKind::Fernet);
    }
    Err(Error::UnknownFormat)
}
