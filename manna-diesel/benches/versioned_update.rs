//! `cargo bench -p manna-diesel --features postgres --bench versioned_update`
//!
//! `update_with_lock` next to a plain Diesel `update(table.find(id)).set(..)`
//! on PostgreSQL, one connection, in the same run: short rounds that
//! alternate the two, and the median of the per-round ratios (so drift of a
//! shared machine cancels out). Prints a Markdown table. Needs PostgreSQL at
//! `MANNA_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

#![allow(
    missing_docs,
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::time::Instant;

use diesel::prelude::*;
use manna_diesel::Versioned;

diesel::table! {
    bench_items (id) {
        id -> BigInt,
        name -> Text,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Identifiable, AsChangeset, Versioned)]
#[diesel(table_name = bench_items)]
struct Item {
    id: i64,
    name: String,
    version: i32,
}

const ROUNDS: usize = 41;
const PER_ROUND: usize = 200;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let url = std::env::var("MANNA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = PgConnection::establish(&url).unwrap_or_else(|e| {
        panic!("PostgreSQL is not reachable at {url} ({e}); start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
    });
    let schema = format!("manna_bench_{}", std::process::id());
    diesel::sql_query(format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(format!("SET search_path TO {schema}"))
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("CREATE TABLE bench_items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL)")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("INSERT INTO bench_items SELECT g, 'x', 1 FROM generate_series(1, 1000) g")
        .execute(&mut conn)
        .unwrap();
    let mut item: Item = bench_items::table
        .find(7)
        .select(Item::as_select())
        .first(&mut conn)
        .unwrap();

    let plain = |conn: &mut PgConnection, n: usize| {
        let start = Instant::now();
        for i in 0..n {
            let rows = diesel::update(bench_items::table.find(42))
                .set(bench_items::name.eq(if i % 2 == 0 { "a" } else { "b" }))
                .execute(conn)
                .unwrap();
            assert_eq!(rows, 1);
        }
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    let mut locked = |conn: &mut PgConnection, n: usize| {
        let start = Instant::now();
        for i in 0..n {
            item.update_with_lock(
                conn,
                bench_items::name.eq(if i % 2 == 0 { "a" } else { "b" }),
            )
            .unwrap();
        }
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    };

    plain(&mut conn, 500);
    locked(&mut conn, 500);
    let (mut p, mut l, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (a, b) = if round % 2 == 0 {
            let a = plain(&mut conn, PER_ROUND);
            (a, locked(&mut conn, PER_ROUND))
        } else {
            let b = locked(&mut conn, PER_ROUND);
            (plain(&mut conn, PER_ROUND), b)
        };
        p.push(a);
        l.push(b);
        r.push(b / a);
    }
    diesel::sql_query(format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .unwrap();

    println!("| statement (PostgreSQL, one connection) | median µs per call |");
    println!("|---|---|");
    println!(
        "| `diesel::update(t.find(id)).set(name.eq(..))` | {:.1} |",
        median(&mut p)
    );
    println!(
        "| `item.update_with_lock(conn, name.eq(..))` | {:.1} |",
        median(&mut l)
    );
    println!(
        "| ratio (median of {ROUNDS} paired rounds of {PER_ROUND}) | {:.3}x |",
        median(&mut r)
    );
}
