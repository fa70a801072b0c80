#!/usr/bin/env python3
"""The baseline for `cargo bench -p manna-cli --bench migrate`: the Fernet ->
AES-256-GCM migration written the way the original Python backend would
(psycopg2 + cryptography), batched exactly like `manna migrate`:

- keyset pages of BATCH rows: SELECT id, col ... WHERE id > last ORDER BY id LIMIT n;
- each value decrypted with MultiFernet (legacy keys) and encrypted to a
  manna v1 text envelope (FORMAT.md) under the primary key;
- one transaction per batch with one compare-and-swap UPDATE ... FROM unnest(...).

Usage: migrate_baseline.py DSN TABLE COLUMN CONTEXT BATCH
Keys: MANNA_ENCRYPTION_KEY_AES256 (primary) and MANNA_ENCRYPTION_KEY (Fernet,
comma-separated), as for `manna`. Prints "rows=<converted> seconds=<elapsed>".
"""
import base64
import hashlib
import hmac
import os
import sys
import time

import psycopg2
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def main():
    dsn, table, column, context, batch = sys.argv[1:6]
    batch = int(batch)
    context = context.encode()
    key = base64.b64decode(os.environ["MANNA_ENCRYPTION_KEY_AES256"])
    header = b"\x01" + hmac.new(key, b"manna/key-id/v1", hashlib.sha256).digest()[:4]
    aead = AESGCM(key)
    aad = header + context
    legacy = MultiFernet([Fernet(k) for k in os.environ["MANNA_ENCRYPTION_KEY"].split(",")])

    def encrypt(plain):
        nonce = os.urandom(12)
        body = header + nonce + aead.encrypt(nonce, plain, aad)
        return "manna:v1:" + base64.urlsafe_b64encode(body).rstrip(b"=").decode()

    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    select = (
        f"SELECT id, {column} FROM {table} WHERE id > %s AND {column} IS NOT NULL "
        f"ORDER BY id LIMIT {batch}"
    )
    update = (
        f"UPDATE {table} AS t SET {column} = v.new FROM unnest(%s::bigint[], %s::text[], %s::text[]) "
        f"AS v(id, old, new) WHERE t.id = v.id AND t.{column} = v.old"
    )
    converted = 0
    last = -(2**63)
    start = time.perf_counter()
    while True:
        cur.execute(select, (last,))
        rows = cur.fetchall()
        conn.commit()
        if not rows:
            break
        last = rows[-1][0]
        ids, olds, news = [], [], []
        for row_id, old in rows:
            if old.startswith("manna:v1:"):
                continue
            ids.append(row_id)
            olds.append(old)
            news.append(encrypt(legacy.decrypt(old.encode())))
        cur.execute(update, (ids, olds, news))
        converted += cur.rowcount
        conn.commit()
    print(f"rows={converted} seconds={time.perf_counter() - start:.4f}")


if __name__ == "__main__":
    main()
