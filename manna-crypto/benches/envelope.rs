//! `cargo bench -p manna-crypto`: the keyring's text envelopes next to the raw
//! `aes-gcm` calls (a cipher built once, a fresh OS-random nonce) and legacy
//! Fernet decryption, at 64 bytes and 4 KiB.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use manna_crypto::{Key, Keyring, LegacyKey};

const CONTEXT: &[u8] = b"plaid_items.access_token";
const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

fn fresh_nonce() -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    getrandom::fill(&mut n).unwrap();
    Nonce::from(n)
}

fn bench(c: &mut Criterion) {
    let key = [0x42u8; 32];
    let ring = Keyring::builder(Key::from_bytes(key))
        .legacy(LegacyKey::from_base64(FERNET_KEY).unwrap())
        .build()
        .unwrap();
    let raw = Aes256Gcm::new(&key.into());
    let fernet = fernet::Fernet::new(FERNET_KEY).unwrap();

    for size in [64usize, 4096] {
        let plain = "x".repeat(size);
        let mut group = c.benchmark_group(format!("{size}B"));
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_function(BenchmarkId::new("encrypt", "raw aes-gcm"), |b| {
            b.iter(|| {
                let nonce = fresh_nonce();
                let payload = aes_gcm::aead::Payload {
                    msg: plain.as_bytes(),
                    aad: CONTEXT,
                };
                black_box(raw.encrypt(&nonce, payload).unwrap())
            })
        });
        group.bench_function(BenchmarkId::new("encrypt", "keyring text"), |b| {
            b.iter(|| black_box(ring.encrypt_string(black_box(&plain), CONTEXT).unwrap()))
        });

        let nonce = fresh_nonce();
        let sealed = raw
            .encrypt(
                &nonce,
                aes_gcm::aead::Payload {
                    msg: plain.as_bytes(),
                    aad: CONTEXT,
                },
            )
            .unwrap();
        group.bench_function(BenchmarkId::new("decrypt", "raw aes-gcm"), |b| {
            b.iter(|| {
                let payload = aes_gcm::aead::Payload {
                    msg: black_box(&sealed),
                    aad: CONTEXT,
                };
                black_box(raw.decrypt(&nonce, payload).unwrap())
            })
        });
        let text = ring.encrypt_string(&plain, CONTEXT).unwrap();
        // Same output type as the raw call (bytes)...
        group.bench_function(BenchmarkId::new("decrypt", "keyring text to bytes"), |b| {
            b.iter(|| black_box(ring.decrypt_text(black_box(&text), CONTEXT).unwrap()))
        });
        // ...and to a String, which adds UTF-8 validation.
        group.bench_function(BenchmarkId::new("decrypt", "keyring text to String"), |b| {
            b.iter(|| black_box(ring.decrypt_string(black_box(&text), CONTEXT).unwrap()))
        });

        let token = fernet.encrypt(plain.as_bytes());
        group.bench_function(
            BenchmarkId::new("decrypt", "legacy fernet (keyring)"),
            |b| b.iter(|| black_box(ring.decrypt_string(black_box(&token), b"").unwrap())),
        );
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
