//! Paired ratios: `cargo bench -p manna-crypto --bench ratio`.
//!
//! Criterion measures one function after another, so on a shared machine a
//! drift in clock speed between two functions shows up as a ratio change.
//! This bench alternates the keyring call and its raw `aes-gcm` floor in
//! short rounds and reports the median of the per-round ratios, which such
//! drift cancels out of. Prints a Markdown table.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use manna_crypto::{Key, Keyring};

const CONTEXT: &[u8] = b"plaid_items.access_token";
const ROUNDS: usize = 201;

fn per_call(iters: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Returns (median ns of a, median ns of b, median of per-round b/a).
fn paired(iters: u32, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64, f64) {
    per_call(iters * 10, &mut a);
    per_call(iters * 10, &mut b);
    let (mut ta, mut tb, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate the order so neither side always runs second.
        let (x, y) = if round % 2 == 0 {
            let x = per_call(iters, &mut a);
            (x, per_call(iters, &mut b))
        } else {
            let y = per_call(iters, &mut b);
            (per_call(iters, &mut a), y)
        };
        ta.push(x);
        tb.push(y);
        r.push(y / x);
    }
    (median(&mut ta), median(&mut tb), median(&mut r))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench` probes harness=false targets with --list
    }
    let key = [0x42u8; 32];
    let ring = Keyring::builder(Key::from_bytes(key)).build().unwrap();
    let raw = Aes256Gcm::new(&key.into());
    let fresh_nonce = || {
        let mut n = [0u8; 12];
        getrandom::fill(&mut n).unwrap();
        Nonce::from(n)
    };

    println!(
        "| size | operation | raw aes-gcm (ns) | keyring (ns) | ratio (median of paired rounds) |"
    );
    println!("|---|---|---|---|---|");
    for size in [64usize, 4096] {
        let plain = "x".repeat(size);
        let iters = if size == 64 { 2000 } else { 200 };

        let (a, b, r) = paired(
            iters,
            || {
                let p = Payload {
                    msg: plain.as_bytes(),
                    aad: CONTEXT,
                };
                black_box(raw.encrypt(&fresh_nonce(), p).unwrap());
            },
            || {
                black_box(ring.encrypt_string(black_box(&plain), CONTEXT).unwrap());
            },
        );
        println!("| {size} B | encrypt to text | {a:.0} | {b:.0} | {r:.3}x |");

        let nonce = fresh_nonce();
        let sealed = raw
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: CONTEXT,
                },
            )
            .unwrap();
        let text = ring.encrypt_string(&plain, CONTEXT).unwrap();
        let raw_decrypt = || {
            let p = Payload {
                msg: black_box(&sealed[..]),
                aad: CONTEXT,
            };
            black_box(raw.decrypt(&nonce, p).unwrap());
        };
        let (a, b, r) = paired(iters, raw_decrypt, || {
            black_box(ring.decrypt_text(black_box(&text), CONTEXT).unwrap());
        });
        println!("| {size} B | decrypt text to bytes | {a:.0} | {b:.0} | {r:.3}x |");
        let (a, b, r) = paired(iters, raw_decrypt, || {
            black_box(ring.decrypt_string(black_box(&text), CONTEXT).unwrap());
        });
        println!("| {size} B | decrypt text to String | {a:.0} | {b:.0} | {r:.3}x |");
        // What base64 alone costs on top of the raw call: decode the text
        // form's body with base64-simd, then the raw decrypt. No envelope work.
        let body = text.trim_start_matches("manna:v1:").to_owned();
        let (a, b, r) = paired(iters, raw_decrypt, || {
            black_box(
                base64_simd::URL_SAFE_NO_PAD
                    .decode_to_vec(black_box(&body))
                    .unwrap(),
            );
            raw_decrypt();
        });
        println!(
            "| {size} B | (reference) base64 decode + raw decrypt | {a:.0} | {b:.0} | {r:.3}x |"
        );
    }
}
