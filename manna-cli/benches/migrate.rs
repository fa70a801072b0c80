//! `cargo bench -p manna-cli --features postgres --bench migrate`
//!
//! The Fernet -> AES-256-GCM migration of a PostgreSQL table of Fernet
//! tokens (200,000 rows by default), three ways, side by side in one run,
//! each on a fresh copy of the same table:
//!
//! - `manna migrate` (this package's binary, as an operator runs it);
//! - the same job in Python, psycopg2 + `cryptography`
//!   (`benches/python/migrate_baseline.py`), batched the same way;
//! - the database floor: the same page SELECTs and the same compare-and-swap
//!   UPDATEs (the engine's own statements), writing values computed before
//!   the clock starts.
//!
//! Wall time per job, including process start and connection; the median of
//! `MANNA_BENCH_ROUNDS` rounds (default 5), the order rotating each round.
//! Then peak memory (RSS) of `manna migrate` at 100,000 and 1,000,000 rows.
//!
//! Needs PostgreSQL (`MANNA_BENCH_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) and `python3` with psycopg2 and
//! cryptography (`python3 -m pip install psycopg2-binary cryptography`).
//! `MANNA_BENCH_ROWS` changes the table size; `MANNA_BENCH_MEMORY=0` skips
//! the memory part.

#![allow(
    missing_docs,
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use manna_crypto::{Key, Keyring};
use manna_diesel::__private::{Dialect, Rewrite, Statements, Stored};
use manna_diesel::migrate::MigrationConnection;

const PRIMARY: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";
const LEGACY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const CONTEXT: &str = "plaid_items.access_token";
const SCHEMA: &str = "manna_bench";
const BATCH: usize = 1000;

diesel::table! {
    manna_bench.template (id) {
        id -> BigInt,
        secret -> Text,
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url} ({e}); start it with: \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    })
}

fn plaintext(id: i64) -> String {
    format!("access-sandbox-{id:08}-5f2b7c1e-9d4a-4c0b-8e61")
}

/// Fills `manna_bench.template` with `rows` Fernet tokens (kept between runs
/// when it already has that many).
fn build_template(conn: &mut PgConnection, rows: i64) {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    conn.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {SCHEMA}; \
         CREATE TABLE IF NOT EXISTS {SCHEMA}.template (id BIGINT PRIMARY KEY, secret TEXT NOT NULL)"
    ))
    .unwrap();
    let have: N = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {SCHEMA}.template"))
        .get_result(conn)
        .unwrap();
    if have.n == rows {
        return;
    }
    eprintln!("building a template of {rows} Fernet tokens...");
    conn.batch_execute(&format!("TRUNCATE {SCHEMA}.template"))
        .unwrap();
    let fernet = fernet::Fernet::new(LEGACY).unwrap();
    let mut id = 1;
    while id <= rows {
        let end = (id + 5000).min(rows + 1);
        let chunk: Vec<_> = (id..end)
            .map(|i| {
                (
                    template::id.eq(i),
                    template::secret.eq(fernet.encrypt(plaintext(i).as_bytes())),
                )
            })
            .collect();
        diesel::insert_into(template::table)
            .values(&chunk)
            .execute(conn)
            .unwrap();
        id = end;
    }
}

/// A fresh copy of the template, as `manna_bench.run`.
fn reset(conn: &mut PgConnection) {
    conn.batch_execute(&format!(
        "DROP TABLE IF EXISTS {SCHEMA}.run; \
         CREATE TABLE {SCHEMA}.run AS SELECT * FROM {SCHEMA}.template; \
         ALTER TABLE {SCHEMA}.run ADD PRIMARY KEY (id); \
         ALTER TABLE {SCHEMA}.run SET (autovacuum_enabled = false); \
         DROP TABLE IF EXISTS manna_encryption_audit_invalid_rows; \
         DROP TABLE IF EXISTS manna_encryption_audit;"
    ))
    .unwrap();
    conn.batch_execute(&format!("VACUUM ANALYZE {SCHEMA}.run"))
        .unwrap();
    conn.batch_execute("CHECKPOINT").unwrap();
}

fn keys(cmd: &mut Command) -> &mut Command {
    cmd.env("MANNA_ENCRYPTION_KEY_AES256", PRIMARY)
        .env("MANNA_ENCRYPTION_KEY", LEGACY)
}

/// `manna migrate`; returns the wall time and its summary.
fn run_manna(url: &str) -> (Duration, String) {
    let start = Instant::now();
    let out = keys(&mut Command::new(env!("CARGO_BIN_EXE_manna")))
        .args([
            "migrate",
            "--database-url",
            url,
            "--table",
            &format!("{SCHEMA}.run"),
            "--column",
            "secret",
            "--context",
            CONTEXT,
            "--batch-size",
            &BATCH.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run manna");
    let elapsed = start.elapsed();
    assert!(out.status.success(), "manna migrate failed");
    (elapsed, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_python(url: &str, rows: i64) -> Duration {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/python/migrate_baseline.py"
    );
    let start = Instant::now();
    let out = keys(&mut Command::new("python3"))
        .args([
            script,
            url,
            &format!("{SCHEMA}.run"),
            "secret",
            CONTEXT,
            &BATCH.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("python3 is needed for the baseline");
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("rows={rows} ")),
        "the Python baseline failed ({stdout}); it needs: python3 -m pip install psycopg2-binary cryptography"
    );
    elapsed
}

/// The engine's own statements, with the new values computed beforehand.
fn run_floor(url: &str, new_values: &HashMap<i64, String>) -> Duration {
    let statements = Statements::new(
        Dialect::Postgres,
        &format!("{SCHEMA}.run"),
        "id",
        "secret",
        BATCH,
    )
    .expect("statements");
    let start = Instant::now();
    let mut conn = connect(url);
    let mut after = i64::MIN;
    loop {
        let rows = conn.fetch_page(statements.page(), after, false).unwrap();
        let Some(last) = rows.last() else { break };
        after = last.id;
        let rewrites: Vec<Rewrite> = rows
            .into_iter()
            .map(|r| Rewrite {
                id: r.id,
                new: Stored::Text(new_values[&r.id].clone()),
                old: r.value.expect("no NULLs in the bench table"),
            })
            .collect();
        let written = conn
            .transaction(|c| c.write_batch(&statements, &rewrites))
            .unwrap();
        assert_eq!(written, rewrites.len());
    }
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn peak_mib(summary: &str) -> f64 {
    summary
        .lines()
        .find(|l| l.trim_start().starts_with("peak memory"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .expect("peak memory in the summary")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; nothing to run there
    }
    let server = env_or(
        "MANNA_BENCH_PG_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    // Everything (the audit tables too) lives in the bench's own schema.
    let sep = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{sep}options=-csearch_path%3D{SCHEMA}");
    connect(&server)
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        .unwrap();
    let rows: i64 = env_or("MANNA_BENCH_ROWS", "200000")
        .parse()
        .expect("MANNA_BENCH_ROWS");
    let rounds: usize = env_or("MANNA_BENCH_ROUNDS", "5")
        .parse()
        .expect("MANNA_BENCH_ROUNDS");
    let mut conn = connect(&url);
    build_template(&mut conn, rows);

    let ring = Keyring::builder(Key::from_base64(PRIMARY).unwrap())
        .build()
        .unwrap();
    let new_values: HashMap<i64, String> = (1..=rows)
        .map(|id| {
            (
                id,
                ring.encrypt_string(&plaintext(id), CONTEXT.as_bytes())
                    .unwrap(),
            )
        })
        .collect();

    let (mut manna, mut python, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for job in 0..3 {
            reset(&mut conn);
            match (job + round) % 3 {
                0 => manna.push(run_manna(&url).0),
                1 => python.push(run_python(&url, rows)),
                _ => floor.push(run_floor(&url, &new_values)),
            }
        }
    }
    let (manna, python, floor) = (median(manna), median(python), median(floor));
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!("\nFernet -> v1 migration of {rows} PostgreSQL rows, batches of {BATCH} (median of {rounds} rounds)\n");
    println!("| job | seconds | rows/s | manna vs this |");
    println!("|---|---:|---:|---:|");
    println!(
        "| `manna migrate` | {:.2} | {:.0} | 1.00x |",
        manna.as_secs_f64(),
        rate(manna)
    );
    println!(
        "| Python (psycopg2 + cryptography) | {:.2} | {:.0} | **{:.2}x** faster |",
        python.as_secs_f64(),
        rate(python),
        python.as_secs_f64() / manna.as_secs_f64()
    );
    println!(
        "| database floor (precomputed values) | {:.2} | {:.0} | **{:.0} %** of the floor's rate |",
        floor.as_secs_f64(),
        rate(floor),
        100.0 * floor.as_secs_f64() / manna.as_secs_f64()
    );

    if env_or("MANNA_BENCH_MEMORY", "1") != "0" {
        let mut peaks = Vec::new();
        for size in [100_000_i64, 1_000_000] {
            build_template(&mut conn, size);
            reset(&mut conn);
            let (_, summary) = run_manna(&url);
            peaks.push((size, peak_mib(&summary)));
        }
        println!("\nPeak memory (RSS) of `manna migrate`\n");
        println!("| rows | peak RSS |");
        println!("|---:|---:|");
        for (size, mib) in &peaks {
            println!("| {size} | {mib:.1} MiB |");
        }
        println!(
            "\n1,000,000 rows / 100,000 rows: **{:.2}x**",
            peaks[1].1 / peaks[0].1
        );
        // Leave the template at the size the timing part uses.
        conn.batch_execute(&format!("DROP TABLE IF EXISTS {SCHEMA}.template"))
            .unwrap();
    }
    conn.batch_execute(&format!("DROP TABLE IF EXISTS {SCHEMA}.run"))
        .unwrap();
}
