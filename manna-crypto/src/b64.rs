//! Unpadded base64url decoding tuned for envelope-sized input.
//!
//! `base64-simd` decodes 32 characters per SIMD step but only while at least
//! 38 remain; the rest goes through its scalar path, which for a 64-byte
//! secret (130 characters) costs as much as the SIMD part. Here the input
//! is copied to a stack buffer and padded with `A` (which decodes to zero
//! bits) to a length of `32k + 8`, so one SIMD call does nearly all the
//! work. Padding a final partial group hides its trailing bits from the
//! decoder, so they are checked here: they land in the byte right after the
//! last real byte, which must therefore be zero, exactly the canonical-form
//! rule the strict decoder applies. The result equals `base64_simd`'s strict
//! decoding, or `None` where it errs; a property test checks this.

use base64_simd::URL_SAFE_NO_PAD;

/// Characters handled on the stack in the small tier (a 64-byte secret is 130).
const SMALL: usize = 32 * 4 + 8;
/// Characters handled on the stack in the large tier.
const LARGE: usize = 32 * 16 + 8;

/// Decodes `text` into a new vector of exactly its decoded length (one
/// allocation, no zero-filling); `None` when it is not valid unpadded base64url.
pub(crate) fn decode_vec(text: &[u8]) -> Option<Vec<u8>> {
    let rounded = text.len().div_ceil(4) * 4;
    let padded = rounded + (8 + 32 - rounded % 32) % 32;
    if padded <= SMALL {
        decode_padded::<SMALL>(text, padded)
    } else if padded <= LARGE {
        decode_padded::<LARGE>(text, padded)
    } else {
        URL_SAFE_NO_PAD.decode_to_vec(text).ok()
    }
}

fn decode_padded<const C: usize>(text: &[u8], padded: usize) -> Option<Vec<u8>> {
    let rem = text.len() % 4;
    if rem == 1 {
        return None;
    }
    let mut chars = [b'A'; C];
    chars[..text.len()].copy_from_slice(text);
    let mut bytes = Vec::with_capacity(padded / 4 * 3);
    URL_SAFE_NO_PAD
        .decode_append(&chars[..padded], &mut bytes)
        .ok()?;
    let n = text.len() / 4 * 3 + rem.saturating_sub(1);
    // Trailing bits of a partial final group must be zero (canonical form).
    if rem != 0 && bytes[n] != 0 {
        return None;
    }
    bytes.truncate(n);
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(text: &[u8]) -> Option<Vec<u8>> {
        decode_vec(text)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn equals_strict_decoding_on_valid_input(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let text = URL_SAFE_NO_PAD.encode_to_string(&bytes);
            prop_assert_eq!(ours(text.as_bytes()), Some(bytes));
        }

        #[test]
        fn equals_strict_decoding_on_any_input(text in "[A-Za-z0-9_=+/ -]{0,200}") {
            prop_assert_eq!(ours(text.as_bytes()), URL_SAFE_NO_PAD.decode_to_vec(&text).ok());
        }
    }

    #[test]
    fn rejects_non_canonical_trailing_bits_and_padding() {
        assert_eq!(ours(b"YWI"), Some(b"ab".to_vec()));
        assert_eq!(ours(b"YWJ"), None);
        assert_eq!(ours(b"YWI="), None);
        assert_eq!(ours(b"Y"), None);
        assert_eq!(ours(b""), Some(Vec::new()));
    }
}
