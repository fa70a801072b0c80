//! `cargo bench -p manna-lock --bench lock_pairs`
//!
//! Uncontended acquire+release pairs per second through `DistributedLock`,
//! side by side with the same two commands issued raw through redis-rs
//! (`SET NX PX`, then `EVALSHA` of the compare-and-delete script), and with
//! two fencing acquires in place of `SET`: a Lua script (`SET NX PX`, then
//! `INCR` on success) and our own `SET NX PX` + `INCR` in `MULTI`/`EXEC`,
//! both raw (no pool, no client code of ours). On 1 and 4 threads, in rounds
//! that rotate the order; the Redis PING round trip; and contended
//! critical sections per second (4 threads, one resource). The PING round
//! trip is measured in every one-thread round, next to the pairs.
//! Needs Redis at `MANNA_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/0`).

#![allow(
    missing_docs,
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use manna_lock::{DistributedLock, LockConfig, LockOptions};

const ROUND: Duration = Duration::from_millis(400);
const ROUNDS: usize = 21;

fn url() -> String {
    std::env::var("MANNA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `work(thread, stop)` on `threads` threads for ROUND; returns operations per second.
fn rate(threads: usize, work: impl Fn(usize, &AtomicBool, &AtomicU64) + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let ops = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (work, stop, ops) = (&work, &stop, &ops);
            s.spawn(move || work(t, stop, ops));
        }
        std::thread::sleep(ROUND);
        stop.store(true, Ordering::Relaxed);
    });
    ops.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// `SET key token NX PX 30000`: the raw pairs' acquire.
fn set_nx(key: &str, token: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(token).arg("NX").arg("PX").arg(30_000);
    cmd
}

/// A raw pair on a dedicated connection per thread: `acquire(conn, key,
/// fence key, token)` (true when it took the lock), then the release script.
fn raw_job<'a>(
    client: &'a redis::Client,
    prefix: &'a str,
    tag: &'a str,
    release: &'a redis::Script,
    acquire: impl Fn(&mut redis::Connection, &str, &str, &str) -> bool + Sync + 'a,
) -> impl Fn(usize, &AtomicBool, &AtomicU64) + Sync + 'a {
    move |t, stop, ops| {
        let mut conn = client.get_connection().unwrap();
        let key = format!("{prefix}{tag}:{{{t}}}");
        let fence_key = format!("{key}:fence");
        while !stop.load(Ordering::Relaxed) {
            let token = format!("{:032x}", getrandom::u64().unwrap());
            assert!(acquire(&mut conn, &key, &fence_key, &token));
            let n: i64 = release.key(&key).arg(&token).invoke(&mut conn).unwrap();
            assert_eq!(n, 1);
            ops.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let url = url();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut probe = client.get_connection().unwrap_or_else(|e| {
        panic!("Redis is not reachable at {url} ({e}); start it with: redis-server --daemonize yes --port 6379 --save \"\" --appendonly no")
    });
    let prefix = format!("manna:bench:{}:", std::process::id());
    let locks =
        DistributedLock::from_url_with(&url, LockConfig::default().prefix(prefix.clone())).unwrap();
    // A Lua fencing acquire, run raw: what fencing costs when done in a script
    // (ours is SET + INCR in MULTI/EXEC, which the server runs for less).
    let acquire = redis::Script::new(
        r"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return redis.call('INCR', KEYS[2]) end return 0",
    );
    let release = redis::Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    );

    let mut pings = Vec::new();
    println!("| threads | raw `SET NX PX` pair/s | raw Lua fencing pair/s (ratio to raw `SET`) | raw `MULTI` fencing pair/s (ratio to raw `SET`) | DistributedLock pair/s | ours: ratio to raw `SET` pair | ours: ratio to raw `MULTI` pair | PING round trips per pair (raw `SET` / raw Lua / raw `MULTI` / ours) |");
    println!("|---|---|---|---|---|---|---|---|");
    for threads in [1usize, 4] {
        let raw_pair = raw_job(&client, &prefix, "raw", &release, |conn, key, _, token| {
            let ok: Option<String> = set_nx(key, token).query(conn).unwrap();
            ok.is_some()
        });
        let raw_fenced = raw_job(
            &client,
            &prefix,
            "rawf",
            &release,
            |conn, key, fence, token| {
                let f: u64 = acquire
                    .key(key)
                    .key(fence)
                    .arg(token)
                    .arg(30_000)
                    .invoke(conn)
                    .unwrap();
                f > 0
            },
        );
        // Our acquire's commands, raw: SET NX PX + INCR in MULTI/EXEC.
        let raw_multi = raw_job(
            &client,
            &prefix,
            "rawm",
            &release,
            |conn, key, fence, token| {
                let (ok, f): (bool, u64) = redis::pipe()
                    .atomic()
                    .add_command(set_nx(key, token))
                    .cmd("INCR")
                    .arg(fence)
                    .query(conn)
                    .unwrap();
                ok && f > 0
            },
        );
        let our_pair = |t: usize, stop: &AtomicBool, ops: &AtomicU64| {
            let resource = format!("ours:{t}");
            while !stop.load(Ordering::Relaxed) {
                let token = locks
                    .acquire_lock(&resource, Duration::from_secs(30))
                    .unwrap();
                assert!(locks.release_lock(&resource, &token).unwrap());
                ops.fetch_add(1, Ordering::Relaxed);
            }
        };
        // One thread PINGing back to back: the round trip, measured in
        // every round next to the pairs (a single sample taken before the
        // rounds drifted by half between runs).
        let ping = |_: usize, stop: &AtomicBool, ops: &AtomicU64| {
            let mut conn = client.get_connection().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let _: String = redis::cmd("PING").query(&mut conn).unwrap();
                ops.fetch_add(1, Ordering::Relaxed);
            }
        };
        // Round trips per pair only on one thread, which waits on every
        // reply; with four threads on this 2-core machine the CPU, not the
        // network, bounds the rate.
        let jobs = if threads == 1 { 5 } else { 4 };
        // Warm-up, then rounds that rotate the order of the jobs.
        rate(threads, &raw_pair);
        rate(threads, &raw_fenced);
        rate(threads, &raw_multi);
        rate(threads, our_pair);
        let mut samples: [Vec<f64>; 4] = Default::default();
        let (mut vs_raw, mut vs_multi, mut lua_vs_raw, mut multi_vs_raw) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut trips: [Vec<f64>; 4] = Default::default();
        for round in 0..ROUNDS {
            let mut got = [0.0; 5];
            for k in 0..jobs {
                let which = (round + k) % jobs;
                got[which] = match which {
                    0 => rate(threads, &raw_pair),
                    1 => rate(threads, &raw_fenced),
                    2 => rate(threads, &raw_multi),
                    3 => rate(threads, our_pair),
                    _ => rate(1, ping),
                };
            }
            for (v, g) in samples.iter_mut().zip(got) {
                v.push(g);
            }
            vs_raw.push(got[3] / got[0]);
            vs_multi.push(got[3] / got[2]);
            lua_vs_raw.push(got[1] / got[0]);
            multi_vs_raw.push(got[2] / got[0]);
            if threads == 1 {
                let ping_rate = got[4];
                pings.push(1e6 / ping_rate);
                for (v, g) in trips.iter_mut().zip(got) {
                    v.push(ping_rate / g);
                }
            }
        }
        let [raw, fenced, multi, ours] = samples.map(|mut v| median(&mut v));
        let [rtt_raw, rtt_fenced, rtt_multi, rtt_ours] = trips.map(|mut v| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2}", median(&mut v))
            }
        });
        println!(
            "| {threads} | {raw:.0} | {fenced:.0} ({:.3}x) | {multi:.0} ({:.3}x) | {ours:.0} | **{:.3}x** | {:.3}x | {rtt_raw} / {rtt_fenced} / {rtt_multi} / {rtt_ours} |",
            median(&mut lua_vs_raw),
            median(&mut multi_vs_raw),
            median(&mut vs_raw),
            median(&mut vs_multi),
        );
    }
    println!();
    let (lo, hi) = pings
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    println!(
        "PING round trip: {:.1} µs (median of {ROUNDS} rounds, {lo:.1}-{hi:.1}); round trips per pair are medians of the per-round ratio pair time / PING time",
        median(&mut pings),
    );

    let contended = rate(4, |_, stop, ops| {
        while !stop.load(Ordering::Relaxed) {
            let guard = locks
                .lock(
                    "contended",
                    LockOptions::new().wait(Duration::from_secs(10)),
                )
                .unwrap();
            drop(guard);
            ops.fetch_add(1, Ordering::Relaxed);
        }
    });
    println!(
        "Contended: 4 threads, one resource, lock() + drop: {contended:.0} critical sections/s"
    );
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}{{contended}}"))
        .query(&mut probe)
        .unwrap();
}
