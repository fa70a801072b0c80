//! The `manna` binary, run as a user would: exit codes, stdout and stderr.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const FERNET_TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";

fn manna(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_manna"));
    cmd.args(args)
        .env_remove("MANNA_ENCRYPTION_KEY_AES256")
        .env_remove("MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS")
        .env_remove("MANNA_ENCRYPTION_KEY")
        .env_remove("MANNA_ENV")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run manna");
    // The command may exit before reading its input (a missing key, say):
    // a broken pipe here is then expected, not a failure.
    match child.stdin.take().expect("stdin").write_all(stdin) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.expect("write stdin"),
    }
    child.wait_with_output().expect("manna finishes")
}

fn keyed() -> [(&'static str, &'static str); 2] {
    [
        ("MANNA_ENCRYPTION_KEY_AES256", KEY),
        ("MANNA_ENCRYPTION_KEY", FERNET_KEY),
    ]
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn keygen_prints_a_usable_variable() {
    let out = manna(&["keygen"], &[], b"");
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).expect("utf8");
    let key = line
        .strip_prefix("MANNA_ENCRYPTION_KEY_AES256=")
        .expect("prefix")
        .trim_end();
    assert!(line.ends_with('\n') && line.lines().count() == 1);
    assert!(manna_crypto::Key::from_base64(key).is_ok());

    let raw = manna(&["keygen", "--raw"], &[], b"");
    let raw = String::from_utf8(raw.stdout).expect("utf8");
    assert_eq!(raw.trim_end().len(), 44);
    assert_ne!(raw.trim_end(), key, "two keygens gave the same key");
}

#[test]
fn encrypt_then_decrypt_round_trips_exact_bytes() {
    let plain = b"line one\nline two\n\xff\x00 trailing spaces   ";
    let enc = manna(&["encrypt", "--context", "users.ssn"], &keyed(), plain);
    assert!(enc.status.success(), "{}", stderr(&enc));
    let text = String::from_utf8(enc.stdout).expect("utf8");
    assert!(text.starts_with("manna:v1:") && text.ends_with('\n') && text.lines().count() == 1);
    // Surrounding whitespace is ignored on input; output is exactly the plaintext.
    let padded = format!("  \n{text}\n\n");
    let dec = manna(
        &["decrypt", "--context", "users.ssn"],
        &keyed(),
        padded.as_bytes(),
    );
    assert!(dec.status.success(), "{}", stderr(&dec));
    assert_eq!(dec.stdout, plain);
    assert!(dec.stderr.is_empty());
}

#[test]
fn binary_round_trip() {
    let plain: Vec<u8> = (0..=255).collect();
    let enc = manna(&["encrypt", "--binary"], &keyed(), &plain);
    assert!(enc.status.success());
    assert_eq!(enc.stdout[0], 0x01);
    assert_eq!(enc.stdout.len(), 33 + 256);
    let dec = manna(&["decrypt", "--binary"], &keyed(), &enc.stdout);
    assert!(dec.status.success(), "{}", stderr(&dec));
    assert_eq!(dec.stdout, plain);
}

#[test]
fn decrypts_legacy_fernet_tokens() {
    let dec = manna(&["decrypt"], &keyed(), FERNET_TOKEN.as_bytes());
    assert!(dec.status.success(), "{}", stderr(&dec));
    assert_eq!(dec.stdout, b"hello");
}

#[test]
fn failures_exit_1_with_one_line_and_no_secrets() {
    let enc = manna(
        &["encrypt", "--context", "a"],
        &keyed(),
        b"TOP-SECRET-PLAINTEXT",
    );
    let text = String::from_utf8(enc.stdout).expect("utf8");
    let cases: Vec<(Vec<&str>, Vec<u8>, &str)> = vec![
        (
            vec!["decrypt", "--context", "b"],
            text.clone().into_bytes(),
            "wrong key, wrong context, or tampered",
        ),
        (
            vec!["decrypt"],
            b"GARBAGE-INPUT-VALUE".to_vec(),
            "neither a manna envelope nor a Fernet token",
        ),
        (
            vec!["decrypt"],
            b"manna:v1:GARBAGE!".to_vec(),
            "not valid base64url",
        ),
        (vec!["decrypt"], b"manna:v1:AQID".to_vec(), "too short"),
        (
            vec!["decrypt"],
            b"manna:v9:AQID".to_vec(),
            "unsupported envelope version 9",
        ),
        (vec!["decrypt"], vec![0xff, 0xfe, 0x00], "not UTF-8"),
        (vec!["decrypt", "--binary"], vec![0x01; 10], "too short"),
    ];
    for (args, input, kind) in cases {
        let out = manna(&args, &keyed(), &input);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(kind), "{args:?}: {err}");
        assert!(
            !err.contains("TOP-SECRET") && !err.contains("GARBAGE"),
            "{args:?} echoed: {err}"
        );
        if let Ok(s) = std::str::from_utf8(&input) {
            assert!(
                s.len() < 12 || !err.contains(s),
                "{args:?} echoed its input"
            );
        }
    }
}

#[test]
fn a_missing_key_says_how_to_make_one() {
    for args in [&["info"][..], &["encrypt"], &["decrypt"]] {
        let out = manna(args, &[], b"x");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            err.contains("MANNA_ENCRYPTION_KEY_AES256") && err.contains("manna keygen"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);
    }
    let bad = manna(
        &["info"],
        &[("MANNA_ENCRYPTION_KEY_AES256", "not-a-key-SECRETISH")],
        b"",
    );
    let err = stderr(&bad);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        err.contains("invalid key in MANNA_ENCRYPTION_KEY_AES256") && !err.contains("SECRETISH"),
        "{err}"
    );
}

#[test]
fn info_is_json_without_key_bytes() {
    let out = manna(&["info"], &keyed(), b"");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(!text.contains("AAECAwQF") && !text.contains("cw_0x"));
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["primary_key_id"], "fea4432a");
    assert_eq!(json["legacy_key_count"], 1);
    assert_eq!(json["development_key"], false);

    let dev = manna(&["info"], &[("MANNA_ENV", "development")], b"");
    assert!(dev.status.success());
    let json: serde_json::Value = serde_json::from_slice(&dev.stdout).expect("json");
    assert_eq!(json["development_key"], true);
    assert!(
        stderr(&dev).contains("development key"),
        "the development key is announced"
    );
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    let out = manna(&["frobnicate"], &[], b"");
    assert_eq!(out.status.code(), Some(2));
    let help = manna(&["--help"], &[], b"");
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).expect("utf8");
    assert!(text.contains("Exit codes:") && text.contains("keygen") && text.contains("decrypt"));
    let help = manna(&["decrypt", "--help"], &[], b"");
    assert!(String::from_utf8(help.stdout)
        .expect("utf8")
        .contains("Examples:"));
}
