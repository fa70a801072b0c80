//! manna-lock against a real Redis.

#![allow(missing_docs, unreachable_pub)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use manna_lock::{DistributedLock, LockConfig, LockError, LockOptions};
use redis::Commands;

#[test]
fn mutual_exclusion_eight_threads() {
    let (locks, prefix) = common::locks();
    let counter_key = format!("{prefix}counter");
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (locks, counter_key, inside, overlaps) = (&locks, &counter_key, &inside, &overlaps);
            s.spawn(move || {
                let mut raw = common::raw();
                for _ in 0..100 {
                    let guard = locks
                        .lock(
                            "counter",
                            LockOptions::new()
                                .ttl(Duration::from_secs(5))
                                .wait(Duration::from_secs(60)),
                        )
                        .expect("lock");
                    if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    // A non-atomic read-modify-write.
                    let v: Option<i64> = raw.get(counter_key).expect("GET");
                    std::thread::sleep(Duration::from_micros(200));
                    let _: () = raw.set(counter_key, v.unwrap_or(0) + 1).expect("SET");
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(guard);
                }
            });
        }
    });
    let v: i64 = common::raw().get(&counter_key).expect("GET");
    assert_eq!(v, 800);
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders at once");
}

#[test]
fn a_crashed_holder_blocks_until_the_ttl_then_the_lock_is_free() {
    let (locks, _) = common::locks();
    let ttl = Duration::from_millis(600);
    let crashed = locks.acquire_lock("job", ttl).expect("first holder");
    std::mem::forget(crashed); // never released
    let start = Instant::now();
    assert!(matches!(
        locks.acquire_lock("job", ttl),
        Err(LockError::Busy { .. })
    ));
    let guard = locks
        .lock("job", LockOptions::new().wait(Duration::from_secs(5)))
        .expect("after the ttl");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(450),
        "took the lock after {waited:?}, before the ttl ran out"
    );
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    drop(guard);
}

#[test]
fn only_the_owner_releases_or_extends() {
    let (locks, prefix) = common::locks();
    let mine = locks
        .acquire_lock("doc", Duration::from_millis(300))
        .expect("acquire");
    let fake = locks
        .acquire_lock("other", Duration::from_secs(5))
        .expect("a token for another resource");
    assert!(
        !locks.release_lock("doc", &fake).expect("release"),
        "a non-owner released"
    );
    assert!(
        !locks
            .extend_lock("doc", &fake, Duration::from_secs(10))
            .expect("extend"),
        "a non-owner extended"
    );

    std::thread::sleep(Duration::from_millis(400)); // mine expires
    let theirs = locks
        .acquire_lock("doc", Duration::from_secs(5))
        .expect("new owner");
    assert!(
        !locks.release_lock("doc", &mine).expect("release"),
        "an expired holder released"
    );
    let held: Option<String> = common::raw().get(format!("{prefix}{{doc}}")).expect("GET");
    assert!(held.is_some(), "the new owner's lock is still in place");
    assert!(locks.release_lock("doc", &theirs).expect("release"));
    let held: Option<String> = common::raw().get(format!("{prefix}{{doc}}")).expect("GET");
    assert!(held.is_none());
}

#[test]
fn dropping_a_guard_frees_the_lock_at_once() {
    let (locks, _) = common::locks();
    for _ in 0..20 {
        let guard = locks
            .lock("hot", LockOptions::new().wait(Duration::ZERO))
            .expect("free");
        drop(guard);
    }
    assert!(matches!(
        locks
            .lock("hot", LockOptions::new().wait(Duration::ZERO))
            .map(|g| g.release()),
        Ok(Ok(true))
    ));
}

#[test]
fn waiting_times_out_naming_the_resource() {
    let (locks, _) = common::locks();
    let _held = locks.lock("busy", LockOptions::new()).expect("first");
    let start = Instant::now();
    let err = locks
        .lock("busy", LockOptions::new().wait(Duration::from_millis(300)))
        .expect_err("second");
    let elapsed = start.elapsed();
    assert!(
        matches!(&err, LockError::Timeout { resource, .. } if resource == "busy"),
        "{err}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    let err = locks
        .lock("busy", LockOptions::new().wait(Duration::ZERO))
        .expect_err("no wait");
    assert!(matches!(err, LockError::Timeout { .. }));
}

#[test]
fn auto_extension_keeps_a_short_lock_through_long_work() {
    let (locks, prefix) = common::locks();
    let key = format!("{prefix}{{long}}");
    let guard = locks
        .lock("long", LockOptions::new().ttl(Duration::from_secs(1)))
        .expect("lock");
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3500) {
        assert!(matches!(
            locks.acquire_lock("long", Duration::from_secs(1)),
            Err(LockError::Busy { .. })
        ));
        guard.check().expect("still held");
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(guard);
    let exists: bool = common::raw().exists(&key).expect("EXISTS");
    assert!(!exists, "released on drop");
    std::thread::sleep(Duration::from_millis(700));
    let exists: bool = common::raw().exists(&key).expect("EXISTS");
    assert!(!exists, "no extension ran after the drop");
}

#[test]
fn fencing_tokens_strictly_increase_across_holders() {
    let (locks, _) = common::locks();
    let mut last = 0;
    for _ in 0..20 {
        let guard = locks.lock("fenced", LockOptions::new()).expect("lock");
        assert!(guard.fencing_token() > last);
        last = guard.fencing_token();
    }
    let token = locks
        .acquire_lock("fenced", Duration::from_secs(1))
        .expect("acquire");
    assert!(token.fence() > last);
}

/// Acquire is `SET NX PX` + `INCR` in one `MULTI` transaction, so a busy
/// attempt moves the counter too. Under contention (4 threads, attempts
/// failing all the time), each holder's fence is still above every earlier
/// holder's, checked inside the critical section against what the previous
/// holder stored; and a busy attempt leaves the holder's lock alone.
#[test]
fn fencing_tokens_strictly_increase_under_contention() {
    let (locks, prefix) = common::locks();
    let last_key = format!("{prefix}last-fence");
    let holders = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (locks, last_key, holders) = (&locks, &last_key, &holders);
            s.spawn(move || {
                let mut raw = common::raw();
                for _ in 0..50 {
                    let guard = locks
                        .lock(
                            "contended-fence",
                            LockOptions::new().wait(Duration::from_secs(60)),
                        )
                        .expect("lock");
                    let fence = guard.fencing_token();
                    let last: Option<u64> = raw.get(last_key).expect("GET");
                    assert!(
                        fence > last.unwrap_or(0),
                        "fence {fence} after a holder with {last:?}"
                    );
                    let _: () = raw.set(last_key, fence).expect("SET");
                    holders.fetch_add(1, Ordering::SeqCst);
                    drop(guard);
                }
            });
        }
    });
    assert_eq!(holders.load(Ordering::SeqCst), 200);

    let held = locks
        .acquire_lock("contended-fence", Duration::from_secs(5))
        .expect("acquire");
    for _ in 0..3 {
        assert!(matches!(
            locks.acquire_lock("contended-fence", Duration::from_secs(5)),
            Err(LockError::Busy { .. })
        ));
    }
    assert!(
        locks
            .release_lock("contended-fence", &held)
            .expect("release"),
        "the busy attempts left the holder's lock in place"
    );
    let next = locks
        .acquire_lock("contended-fence", Duration::from_secs(5))
        .expect("acquire");
    assert!(next.fence() > held.fence());
}

#[test]
fn extend_and_check_report_a_lost_lock() {
    let (locks, prefix) = common::locks();
    let guard = locks
        .lock(
            "stolen",
            LockOptions::new()
                .ttl(Duration::from_secs(5))
                .auto_extend(false),
        )
        .expect("lock");
    guard.check().expect("held");
    // Someone deletes the key behind our back (an operator, a flush).
    let _: () = common::raw()
        .del(format!("{prefix}{{stolen}}"))
        .expect("DEL");
    assert!(matches!(guard.check(), Err(LockError::Lost { .. })));
    assert!(matches!(
        guard.extend(Duration::from_secs(5)),
        Err(LockError::Lost { .. })
    ));
}

#[test]
fn redis_killed_while_held_then_back() {
    let mut server = common::OwnRedis::start();
    let config = LockConfig::default()
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300));
    let locks = DistributedLock::from_url_with(&server.url(), config).expect("client");
    let ttl = Duration::from_millis(1500);
    let guard = locks
        .lock("fragile", LockOptions::new().ttl(ttl))
        .expect("lock");
    guard.check().expect("held");

    server.kill();
    let killed = Instant::now();
    while guard.check().is_ok() {
        assert!(killed.elapsed() < ttl, "check() still Ok after the ttl");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(matches!(guard.check(), Err(LockError::Lost { .. })));

    let start = Instant::now();
    let err = locks
        .lock("other", LockOptions::new().wait(Duration::from_secs(5)))
        .expect_err("Redis is down");
    assert!(
        matches!(err, LockError::Pool(_) | LockError::Redis(_)),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "failed slowly: {:?}",
        start.elapsed()
    );
    drop(guard); // its release fails and is logged, not panicked

    server.restart();
    let guard = locks
        .lock("fragile", LockOptions::new().wait(Duration::from_secs(2)))
        .expect("works again");
    guard.check().expect("held");
}

/// Release and extend are Lua scripts run by `EVALSHA`; a server that lost
/// its script cache (`SCRIPT FLUSH`, a restart, a failover) answers
/// `NOSCRIPT`, and the script is loaded again on the same call. A server of
/// the test's own, so the flush touches no other test.
#[test]
fn scripts_are_loaded_again_after_the_server_forgets_them() {
    let server = common::OwnRedis::start();
    let locks = DistributedLock::from_url(&server.url()).expect("client");
    let mut raw = redis::Client::open(server.url())
        .expect("url")
        .get_connection()
        .expect("connect");
    let flush = |raw: &mut redis::Connection| {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(raw)
            .expect("SCRIPT FLUSH");
        noscript_errors(raw)
    };

    let first = locks
        .acquire_lock("flushed", Duration::from_secs(5))
        .expect("acquire");
    assert!(locks.release_lock("flushed", &first).expect("release"));

    let guard = locks
        .lock("flushed", LockOptions::new().auto_extend(false))
        .expect("lock");
    let before = flush(&mut raw);
    guard
        .extend(Duration::from_secs(5))
        .expect("extend after the flush");
    assert_eq!(noscript_errors(&mut raw), before + 1, "extend met NOSCRIPT");
    let before = flush(&mut raw);
    assert!(
        guard.release().expect("release after the flush"),
        "it still held the lock"
    );
    assert_eq!(
        noscript_errors(&mut raw),
        before + 1,
        "release met NOSCRIPT"
    );
    let exists: bool = raw.exists("manna:lock:{flushed}").expect("EXISTS");
    assert!(!exists, "the lock is gone after the release");
}

/// How many `NOSCRIPT` replies the server has sent (`INFO errorstats`).
fn noscript_errors(raw: &mut redis::Connection) -> u32 {
    let errors: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(raw)
        .expect("INFO");
    errors
        .lines()
        .find_map(|l| l.strip_prefix("errorstat_NOSCRIPT:count="))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}
