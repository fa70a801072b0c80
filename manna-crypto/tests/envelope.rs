//! Behaviour of the v1 envelope and the keyring: round trips, tampering,
//! truncation, contexts, keys, rotation, nonces and configuration.

use std::collections::HashSet;

use base64::Engine as _;
use manna_crypto::{classify, Error, Format, Key, KeyProblem, Keyring, LegacyKey, MIN_LEN};
use proptest::prelude::*;

fn ring() -> Keyring {
    Keyring::builder(Key::generate().expect("rng"))
        .build()
        .expect("ring")
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn binary_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..2048),
                         ctx in proptest::collection::vec(any::<u8>(), 0..400)) {
        let ring = ring();
        let bin = ring.encrypt_bytes(&plain, &ctx).expect("ok");
        prop_assert_eq!(bin.len(), MIN_LEN + plain.len());
        prop_assert_eq!(ring.decrypt_bytes(&bin, &ctx).expect("ok"), plain);
    }

    #[test]
    fn text_round_trip(plain in ".{0,1500}", ctx in proptest::collection::vec(any::<u8>(), 0..300)) {
        let ring = ring();
        let text = ring.encrypt_string(&plain, &ctx).expect("ok");
        prop_assert!(text.starts_with("manna:v1:"));
        prop_assert!(!text.contains('='));
        prop_assert_eq!(ring.decrypt_string(&text, &ctx).expect("ok"), plain);
    }

    #[test]
    fn another_context_is_rejected(plain in proptest::collection::vec(any::<u8>(), 0..64),
                                   a in proptest::collection::vec(any::<u8>(), 0..32),
                                   b in proptest::collection::vec(any::<u8>(), 0..32)) {
        prop_assume!(a != b);
        let ring = ring();
        let bin = ring.encrypt_bytes(&plain, &a).expect("ok");
        prop_assert!(matches!(ring.decrypt_bytes(&bin, &b), Err(Error::Decrypt)));
    }

    #[test]
    fn garbage_text_never_panics(s in ".{0,200}") {
        let ring = ring();
        let _ = ring.decrypt_string(&s, b"");
        let _ = ring.decrypt_string(&format!("manna:v1:{s}"), b"");
        let _ = ring.decrypt_bytes(s.as_bytes(), b"");
        let _ = classify(&s);
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let ring = ring();
    for len in [0usize, 1, 17, 64] {
        let plain = vec![0x5a; len];
        let bin = ring.encrypt_bytes(&plain, b"t.c").expect("encrypt");
        for bit in 0..bin.len() * 8 {
            let mut bad = bin.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let result = ring.decrypt_bytes(&bad, b"t.c");
            assert!(result.is_err(), "flip of bit {bit} (len {len}) accepted");
        }
        // The same through the text form.
        let text = format!("manna:v1:{}", b64().encode(&bin));
        assert_eq!(
            ring.decrypt_bytes(text.as_bytes(), b"t.c").expect("intact"),
            plain
        );
        for bit in 0..bin.len() * 8 {
            let mut bad = bin.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let text = format!("manna:v1:{}", b64().encode(&bad));
            assert!(ring.decrypt_string(&text, b"t.c").is_err());
        }
    }
}

#[test]
fn header_flips_give_typed_errors() {
    let ring = ring();
    let bin = ring.encrypt_bytes(b"x", b"").expect("encrypt");
    let mut version = bin.clone();
    version[0] = 2;
    assert!(matches!(
        ring.decrypt_bytes(&version, b""),
        Err(Error::UnsupportedVersion { version: 2 })
    ));
    let mut key_id = bin.clone();
    key_id[3] ^= 0x40;
    assert!(matches!(
        ring.decrypt_bytes(&key_id, b""),
        Err(Error::UnknownKeyId { .. })
    ));
    let mut tag = bin;
    let last = tag.len() - 1;
    tag[last] ^= 1;
    assert!(matches!(ring.decrypt_bytes(&tag, b""), Err(Error::Decrypt)));
}

#[test]
fn every_truncation_is_rejected_without_panic() {
    let ring = ring();
    let bin = ring.encrypt_bytes(&[7u8; 40], b"ctx").expect("encrypt");
    for cut in 0..bin.len() {
        let short = &bin[..cut];
        let err = ring
            .decrypt_bytes(short, b"ctx")
            .expect_err("truncated accepted");
        if cut < MIN_LEN {
            assert!(
                matches!(err, Error::Truncated { len } if len == cut)
                    || cut == 0 && matches!(err, Error::Truncated { .. }),
                "cut {cut}: {err:?}"
            );
        } else {
            assert!(matches!(err, Error::Decrypt), "cut {cut}: {err:?}");
        }
        let text = format!("manna:v1:{}", b64().encode(short));
        assert!(ring.decrypt_string(&text, b"ctx").is_err());
    }
    let text = ring
        .encrypt_string("forty-some characters of secret text....", b"ctx")
        .expect("encrypt");
    for cut in 0..text.len() {
        assert!(
            ring.decrypt_string(&text[..cut], b"ctx").is_err(),
            "text cut at {cut} accepted"
        );
    }
}

#[test]
fn text_errors_are_typed() {
    let ring = ring();
    assert!(matches!(
        ring.decrypt_string("hello", b""),
        Err(Error::UnknownFormat)
    ));
    assert!(matches!(
        ring.decrypt_string("", b""),
        Err(Error::UnknownFormat)
    ));
    assert!(matches!(
        ring.decrypt_string("manna:v2:AAAA", b""),
        Err(Error::UnsupportedVersion { version: 2 })
    ));
    assert!(matches!(
        ring.decrypt_string("manna:v1:***", b""),
        Err(Error::InvalidBase64)
    ));
    assert!(matches!(
        ring.decrypt_string("manna:v1:AQID", b""),
        Err(Error::Truncated { len: 3 })
    ));
    // Padding is not part of the format.
    let text = ring.encrypt_string("ab", b"").expect("encrypt");
    assert!(matches!(
        ring.decrypt_string(&format!("{text}="), b""),
        Err(Error::InvalidBase64)
    ));
    // Non-UTF-8 plaintext through the string API.
    let bin_text = ring.encrypt_to_text(&[0xff, 0xfe], b"").expect("encrypt");
    assert!(matches!(
        ring.decrypt_string(&bin_text, b""),
        Err(Error::NotUtf8)
    ));
}

#[test]
fn wrong_key_is_the_same_opaque_error_as_tampering() {
    let a = ring();
    let bytes = *Key::generate().expect("rng").expose_secret();
    let b1 = Keyring::builder(Key::from_bytes(bytes))
        .build()
        .expect("ring");
    let text = b1.encrypt_string("secret", b"c").expect("encrypt");
    assert!(matches!(
        a.decrypt_string(&text, b"c"),
        Err(Error::UnknownKeyId { .. })
    ));
    // A different key that somehow carries the same id (forged header) is one opaque error.
    let mut bin = a.encrypt_bytes(b"secret", b"c").expect("encrypt");
    bin[1..5].copy_from_slice(b1.primary_key_id().as_bytes());
    assert!(matches!(b1.decrypt_bytes(&bin, b"c"), Err(Error::Decrypt)));
    assert_eq!(
        Error::Decrypt.to_string(),
        "decryption failed: wrong key, wrong context, or tampered data"
    );
}

#[test]
fn rotation_reads_previous_keys_and_flags_them() {
    let old_bytes = *Key::generate().expect("rng").expose_secret();
    let old = Keyring::builder(Key::from_bytes(old_bytes))
        .build()
        .expect("ring");
    let old_text = old.encrypt_string("v", b"c").expect("encrypt");
    let old_bin = old.encrypt_bytes(b"v", b"c").expect("encrypt");

    let rotated = Keyring::builder(Key::generate().expect("rng"))
        .previous(Key::from_bytes(old_bytes))
        .build()
        .expect("ring");
    assert_eq!(
        rotated
            .decrypt_string(&old_text, b"c")
            .expect("previous key reads"),
        "v"
    );
    assert_eq!(
        rotated
            .decrypt_bytes(&old_bin, b"c")
            .expect("previous key reads"),
        b"v"
    );
    assert!(rotated.needs_reencryption(&old_text));
    assert!(rotated.needs_reencryption_bytes(&old_bin));
    let new_text = rotated.encrypt_string("v", b"c").expect("encrypt");
    assert!(!rotated.needs_reencryption(&new_text));
    assert_eq!(
        classify(&new_text),
        Format::V1 {
            key_id: rotated.primary_key_id()
        }
    );
    assert!(!rotated.needs_reencryption("not an envelope"));
}

#[test]
fn duplicate_key_ids_are_rejected() {
    let bytes = [3u8; 32];
    let err = Keyring::builder(Key::from_bytes(bytes))
        .previous(Key::from_bytes(bytes))
        .build()
        .expect_err("duplicate accepted");
    assert!(matches!(err, Error::DuplicateKeyId { .. }));
    let env = |name: &str| match name {
        "MANNA_ENCRYPTION_KEY_AES256" => {
            Some(base64::engine::general_purpose::STANDARD.encode([4u8; 32]))
        }
        "MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS" => Some(format!(
            "{a}, {a}",
            a = base64::engine::general_purpose::STANDARD.encode([5u8; 32])
        )),
        _ => None,
    };
    assert!(matches!(
        Keyring::from_env_with(env),
        Err(Error::DuplicateKeyId { .. })
    ));
}

#[test]
fn a_million_nonces_are_distinct() {
    let ring = ring();
    let mut seen = HashSet::with_capacity(1_000_000);
    for _ in 0..1_000_000 {
        let bin = ring.encrypt_bytes(b"", b"").expect("encrypt");
        let nonce: [u8; 12] = bin[5..17].try_into().expect("12 bytes");
        assert!(seen.insert(nonce), "nonce repeated");
    }
    assert_eq!(seen.len(), 1_000_000);
}

#[test]
fn keys_parse_leniently_and_fail_without_echo() {
    let std_padded = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let forms = [
        std_padded,
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    ];
    let id = Key::from_base64(std_padded).expect("parse").id();
    for form in forms {
        assert_eq!(Key::from_base64(form).expect("parse").id(), id);
    }
    // url-safe alphabet
    let bytes = [0xfbu8; 32];
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let std = base64::engine::general_purpose::STANDARD.encode(bytes);
    assert!(url.contains('-') || url.contains('_'));
    assert_eq!(
        Key::from_base64(&url).expect("url").id(),
        Key::from_base64(&std).expect("std").id()
    );

    let secretish = "SuperSecretValueThatIsNotBase64!!";
    let err = Key::from_base64(secretish).expect_err("bad");
    assert!(matches!(
        err,
        Error::InvalidKey {
            reason: KeyProblem::NotBase64,
            ..
        }
    ));
    assert!(!err.to_string().contains("SuperSecret"));
    let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
    let err = Key::from_base64(&short).expect_err("short");
    assert!(matches!(
        err,
        Error::InvalidKey {
            reason: KeyProblem::WrongLength { found: 16 },
            ..
        }
    ));
    assert!(!err.to_string().contains(&short));
    assert!(LegacyKey::from_base64(&short).is_err());
}

#[test]
fn debug_never_shows_key_bytes() {
    let key = Key::from_bytes([0x41; 32]);
    let shown = format!("{key:?}");
    assert!(shown.contains(&key.id().to_string()));
    assert!(!shown.contains("65") && !shown.contains("QUFB"), "{shown}");
    let ring = Keyring::builder(key).build().expect("ring");
    let shown = format!("{ring:?}");
    assert!(!shown.contains("QUFB"));
}

#[test]
fn configuration_from_environment() {
    let k1 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    let k2 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([2u8; 32]);
    let k3 = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
    let fernet = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    let ring = Keyring::from_env_with(|name| match name {
        "MANNA_ENCRYPTION_KEY_AES256" => Some(k1.clone()),
        "MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS" => Some(format!("{k2}, {k3},")),
        "MANNA_ENCRYPTION_KEY" => Some(format!("{fernet},{fernet}")),
        "MANNA_ENV" => Some("development".into()),
        _ => None,
    })
    .expect("ring");
    assert_eq!(ring.primary_key_id(), Key::from_bytes([1u8; 32]).id());
    assert_eq!(
        ring.previous_key_ids(),
        vec![
            Key::from_bytes([2u8; 32]).id(),
            Key::from_bytes([3u8; 32]).id()
        ]
    );
    assert_eq!(ring.legacy_key_count(), 2);
    assert!(
        !ring.is_development(),
        "a configured key is never the development key"
    );

    // Missing key outside development: names the variable and the fix.
    for env in [None, Some("production"), Some("staging")] {
        let err = Keyring::from_env_with(|name| {
            (name == "MANNA_ENV")
                .then(|| env.map(String::from))
                .flatten()
        })
        .expect_err("missing key accepted");
        let msg = err.to_string();
        assert!(
            msg.contains("MANNA_ENCRYPTION_KEY_AES256") && msg.contains("manna keygen"),
            "{msg}"
        );
    }

    // Development: a deterministic key, flagged.
    let dev = |mode: &'static str| {
        Keyring::from_env_with(move |name| (name == "MANNA_ENV").then(|| mode.to_owned()))
            .expect("dev ring")
    };
    let (a, b) = (dev("development"), dev("test"));
    assert!(a.is_development() && a.info().development_key);
    assert_eq!(a.primary_key_id(), b.primary_key_id());

    // A bad previous key is named by variable and position, and not echoed.
    let err = Keyring::from_env_with(|name| match name {
        "MANNA_ENCRYPTION_KEY_AES256" => Some(k1.clone()),
        "MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS" => Some(format!("{k2},hunter2")),
        _ => None,
    })
    .expect_err("bad previous accepted");
    let msg = err.to_string();
    assert!(
        msg.contains("MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS[1]") && !msg.contains("hunter2"),
        "{msg}"
    );
}

#[test]
fn info_has_ids_and_counts_only() {
    let ring = Keyring::builder(Key::from_bytes([8u8; 32]))
        .previous(Key::from_bytes([9u8; 32]))
        .legacy(LegacyKey::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").expect("k"))
        .build()
        .expect("ring");
    let json = serde_json::to_value(ring.info()).expect("json");
    assert_eq!(json["algorithm"], "AES-256-GCM");
    assert_eq!(json["format"], "manna:v1");
    assert_eq!(json["primary_key_id"], ring.primary_key_id().to_string());
    assert_eq!(
        json["previous_key_ids"][0],
        Key::from_bytes([9u8; 32]).id().to_string()
    );
    assert_eq!(json["legacy_key_count"], 1);
    assert_eq!(json["development_key"], false);
    assert_eq!(json.as_object().expect("object").len(), 6);
}

#[test]
fn errors_never_contain_plaintext() {
    let ring = ring();
    let text = ring
        .encrypt_string("PLAINTEXT-SECRET", b"a")
        .expect("encrypt");
    for err in [
        ring.decrypt_string(&text, b"b").expect_err("ctx"),
        ring.decrypt_string("PLAINTEXT-SECRET", b"")
            .expect_err("garbage"),
        ring.decrypt_string("manna:v1:PLAINTEXT-SECRET", b"")
            .expect_err("garbage"),
    ] {
        assert!(
            !err.to_string().contains("PLAINTEXT") && !format!("{err:?}").contains("PLAINTEXT")
        );
    }
}

#[test]
fn worked_example_from_format_md_decrypts() {
    let ring = Keyring::builder(Key::from_bytes(std::array::from_fn(|i| i as u8)))
        .build()
        .expect("ring");
    assert_eq!(ring.primary_key_id().to_string(), "fea4432a");
    let text = "manna:v1:Af6kQyoAAQIDBAUGBwgJCgsvZ7p3qhpk6DOntgD4knwn0VVHc7Q";
    assert_eq!(
        ring.decrypt_string(text, b"users.email")
            .expect("known answer"),
        "hello"
    );
}
