"""Cross-language checks for the manna v1 envelope, written from FORMAT.md alone.

    python3 interop.py decrypt   < cases.json   # decrypt envelopes made by Rust
    python3 interop.py make      < request.json # make Fernet tokens and v1 envelopes for Rust

Needs the `cryptography` package (pip install cryptography).
"""
import base64
import hashlib
import hmac
import json
import os
import sys

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "manna:v1:"


def key_id(key: bytes) -> bytes:
    return hmac.new(key, b"manna/key-id/v1", hashlib.sha256).digest()[:4]


def b64url_nopad_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def open_envelope(key: bytes, text: str, context: bytes) -> bytes:
    assert text.startswith(PREFIX), "not a v1 text envelope"
    blob = b64url_nopad_decode(text[len(PREFIX):])
    assert len(blob) >= 33 and blob[0] == 0x01
    assert blob[1:5] == key_id(key), "envelope is under another key"
    nonce, ciphertext_and_tag = blob[5:17], blob[17:]
    return AESGCM(key).decrypt(nonce, ciphertext_and_tag, blob[0:5] + context)


def seal_envelope(key: bytes, plaintext: bytes, context: bytes) -> str:
    header = bytes([0x01]) + key_id(key)
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext, header + context)
    return PREFIX + base64.urlsafe_b64encode(header + nonce + sealed).decode().rstrip("=")


def main() -> None:
    mode = sys.argv[1]
    req = json.load(sys.stdin)
    if mode == "decrypt":
        key = base64.b64decode(req["key"])
        out = []
        for case in req["cases"]:
            plain = open_envelope(key, case["envelope"], bytes.fromhex(case["context_hex"]))
            out.append(plain.hex())
        json.dump({"plaintexts_hex": out, "key_id": key_id(key).hex()}, sys.stdout)
    elif mode == "make":
        aes_key = base64.b64decode(req["aes_key"])
        fernet = Fernet(req["fernet_key"].encode())
        out = []
        for case in req["cases"]:
            plain = bytes.fromhex(case["plaintext_hex"])
            ctx = bytes.fromhex(case["context_hex"])
            out.append({
                "plaintext_hex": plain.hex(),
                "context_hex": ctx.hex(),
                "fernet": fernet.encrypt(plain).decode(),
                "envelope": seal_envelope(aes_key, plain, ctx),
            })
        json.dump({"cases": out}, sys.stdout)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
