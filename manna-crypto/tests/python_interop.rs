//! Cross-language checks against Python's `cryptography` package: Python reads
//! what this crate writes using only FORMAT.md, and this crate reads Fernet
//! tokens and v1 envelopes that Python wrote.
//!
//! Needs `python3` with `cryptography` (`.ci/run` installs it with pip).

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use manna_crypto::{Key, Keyring, LegacyKey};
use serde_json::{json, Value};

fn python(mode: &str, input: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/interop.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 not found: install Python 3 and `pip install cryptography` (see .ci/run)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write to python");
    let out = child.wait_with_output().expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 {mode} failed (is `cryptography` installed? `python3 -m pip install cryptography`):\n{stderr}"
    );
    serde_json::from_slice(&out.stdout).expect("python prints JSON")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn samples() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (b"".to_vec(), b"".to_vec()),
        (b"hello".to_vec(), b"plaid_items.access_token".to_vec()),
        (
            "naïve ☃ ünïcødé".as_bytes().to_vec(),
            b"users.name".to_vec(),
        ),
        ((0..=255u8).collect(), vec![0, 1, 2, 255]),
        (vec![b'x'; 5000], vec![b'c'; 300]),
    ]
}

#[test]
fn python_decrypts_rust_envelopes_from_the_format_text() {
    let key_bytes = [0x42u8; 32];
    let ring = Keyring::builder(Key::from_bytes(key_bytes))
        .build()
        .expect("ring");
    let cases: Vec<Value> = samples()
        .iter()
        .map(|(plain, ctx)| {
            json!({"envelope": ring.encrypt_to_text(plain, ctx).expect("encrypt"), "context_hex": hex(ctx)})
        })
        .collect();
    let reply = python(
        "decrypt",
        &json!({"key": base64::engine::general_purpose::STANDARD.encode(key_bytes), "cases": cases}),
    );
    assert_eq!(reply["key_id"], ring.primary_key_id().to_string());
    let got: Vec<Vec<u8>> = reply["plaintexts_hex"]
        .as_array()
        .expect("array")
        .iter()
        .map(|v| unhex(v.as_str().expect("str")))
        .collect();
    let want: Vec<Vec<u8>> = samples().into_iter().map(|(p, _)| p).collect();
    assert_eq!(got, want);
}

#[test]
fn rust_decrypts_python_fernet_tokens_and_envelopes() {
    let aes = [0x17u8; 32];
    let fernet_key = base64::engine::general_purpose::URL_SAFE.encode([0x99u8; 32]);
    let ring = Keyring::builder(Key::from_bytes(aes))
        .legacy(LegacyKey::from_base64(&fernet_key).expect("fernet key"))
        .build()
        .expect("ring");
    let cases: Vec<Value> = samples()
        .iter()
        .map(|(p, c)| json!({"plaintext_hex": hex(p), "context_hex": hex(c)}))
        .collect();
    let reply = python(
        "make",
        &json!({
            "aes_key": base64::engine::general_purpose::STANDARD.encode(aes),
            "fernet_key": fernet_key,
            "cases": cases,
        }),
    );
    let made = reply["cases"].as_array().expect("cases");
    assert_eq!(made.len(), samples().len());
    for case in made {
        let plain = unhex(case["plaintext_hex"].as_str().expect("hex"));
        let ctx = unhex(case["context_hex"].as_str().expect("hex"));
        let token = case["fernet"].as_str().expect("fernet");
        let envelope = case["envelope"].as_str().expect("envelope");
        assert_eq!(ring.decrypt_text(token, b"").expect("python fernet"), plain);
        assert!(ring.needs_reencryption(token));
        assert_eq!(
            ring.decrypt_text(envelope, &ctx).expect("python envelope"),
            plain
        );
        assert!(!ring.needs_reencryption(envelope));
    }
}
