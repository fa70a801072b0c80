//! The public Fernet specification vectors (github.com/fernet/spec), copied
//! from `shared/vectors/fernet-spec` into `tests/data/fernet-spec`.

use manna_crypto::{Error, Key, Keyring, LegacyKey};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/data/fernet-spec/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let cases: Vec<Value> = serde_json::from_str(&text).expect("vector file is JSON");
    assert!(!cases.is_empty(), "{name} holds no cases");
    cases
}

fn unix(rfc3339: &str) -> u64 {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).expect("RFC 3339 timestamp");
    u64::try_from(t.timestamp()).expect("after 1970")
}

fn ring_with(secret: &str) -> Keyring {
    Keyring::builder(Key::generate().expect("rng"))
        .legacy(LegacyKey::from_base64(secret).expect("spec key parses"))
        .build()
        .expect("ring")
}

fn s<'a>(case: &'a Value, field: &str) -> &'a str {
    case[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field} missing"))
}

#[test]
fn generate_tokens_decrypt_to_their_source() {
    for case in load("generate.json") {
        let ring = ring_with(s(&case, "secret"));
        let plain = ring
            .decrypt_string(s(&case, "token"), b"")
            .expect("generate token decrypts");
        assert_eq!(plain, s(&case, "src"));
    }
}

#[test]
fn verify_tokens_decrypt_at_their_time_and_through_the_keyring() {
    for case in load("verify.json") {
        let secret = s(&case, "secret");
        let token = s(&case, "token");
        let ttl = case["ttl_sec"].as_u64().expect("ttl_sec");
        let fernet = fernet::Fernet::new(secret).expect("key");
        let at_time = fernet
            .decrypt_at_time(token, Some(ttl), unix(s(&case, "now")))
            .expect("verify token decrypts at `now` within ttl");
        assert_eq!(at_time, s(&case, "src").as_bytes());
        // The keyring applies no TTL to stored data, so it reads the token today too.
        assert_eq!(
            ring_with(secret)
                .decrypt_string(token, b"")
                .expect("keyring"),
            s(&case, "src")
        );
    }
}

#[test]
fn invalid_tokens_are_rejected() {
    for case in load("invalid.json") {
        let desc = s(&case, "desc");
        let secret = s(&case, "secret");
        let token = s(&case, "token");
        let ttl = case["ttl_sec"].as_u64().expect("ttl_sec");
        let fernet = fernet::Fernet::new(secret).expect("key");
        assert!(
            fernet
                .decrypt_at_time(token, Some(ttl), unix(s(&case, "now")))
                .is_err(),
            "{desc}: accepted at its `now` and ttl"
        );
        // Cases about time only fail relative to their `now`; data at rest
        // has no TTL (see the crate docs). Every other case must fail in the
        // keyring too, with a typed error.
        let time_only = desc.contains("TTL") || desc.contains("clock skew");
        let result = ring_with(secret).decrypt_string(token, b"");
        if time_only {
            assert!(
                result.is_ok(),
                "{desc}: structurally valid token should read as data at rest"
            );
        } else {
            assert!(
                matches!(result, Err(Error::LegacyDecrypt | Error::UnknownFormat)),
                "{desc}: expected a typed rejection, got {result:?}"
            );
        }
    }
}

#[test]
fn fernet_needs_a_legacy_key_and_the_right_one() {
    let token = s(&load("generate.json")[0], "token").to_owned();
    let no_legacy = Keyring::builder(Key::generate().expect("rng"))
        .build()
        .expect("ring");
    assert!(matches!(
        no_legacy.decrypt_string(&token, b""),
        Err(Error::NoLegacyKeys)
    ));
    let wrong = ring_with("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    assert!(matches!(
        wrong.decrypt_string(&token, b""),
        Err(Error::LegacyDecrypt)
    ));
    assert!(no_legacy.needs_reencryption(&token));
}

#[test]
fn multi_fernet_tries_every_legacy_key_newest_first() {
    let case = &load("generate.json")[0];
    let ring = Keyring::builder(Key::generate().expect("rng"))
        .legacy(LegacyKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("k"))
        .legacy(LegacyKey::from_base64(s(case, "secret")).expect("k"))
        .build()
        .expect("ring");
    assert_eq!(
        ring.decrypt_string(s(case, "token"), b"")
            .expect("second key"),
        s(case, "src")
    );
}
