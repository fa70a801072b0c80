//! Redlock over three `redis-server`s of the test's own.

#![allow(missing_docs, unreachable_pub)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use manna_lock::{LockConfig, LockError, LockOptions, Redlock};

fn config() -> LockConfig {
    LockConfig::default()
        .connect_timeout(Duration::from_millis(200))
        .command_timeout(Duration::from_millis(200))
}

#[test]
fn quorum_of_three_survives_one_loss_and_fails_cleanly_at_two() {
    let mut servers: Vec<common::OwnRedis> = (0..3).map(|_| common::OwnRedis::start()).collect();
    let urls: Vec<String> = servers.iter().map(common::OwnRedis::url).collect();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let redlock = Redlock::from_urls(&url_refs, config()).expect("client");
    let other = Redlock::from_urls(&url_refs, config()).expect("second client");
    assert_eq!(redlock.quorum(), 2);

    // All up: exclusive.
    let guard = redlock
        .lock("job", LockOptions::new().ttl(Duration::from_secs(2)))
        .expect("lock");
    assert!(matches!(
        other.acquire_lock("job", Duration::from_secs(2)),
        Err(LockError::Busy { .. })
    ));
    guard.check().expect("held");
    drop(guard);
    let token = other
        .acquire_lock("job", Duration::from_secs(2))
        .expect("free after drop");
    assert!(other.release_lock("job", &token).expect("release"));

    // One master down: still works, still exclusive, and a held guard keeps extending.
    let guard = redlock
        .lock("job", LockOptions::new().ttl(Duration::from_millis(900)))
        .expect("lock");
    servers[0].kill();
    std::thread::sleep(Duration::from_millis(1200)); // past the ttl: auto-extension on 2 of 3 kept it
    guard.check().expect("still held with 2 of 3");
    assert!(matches!(
        other.acquire_lock("job", Duration::from_secs(1)),
        Err(LockError::Busy { .. })
    ));
    drop(guard);
    let guard = other
        .lock("job", LockOptions::new().wait(Duration::from_secs(1)))
        .expect("2 of 3 suffice");
    drop(guard);

    // Two down: fails fast with a clear error, no waiting.
    servers[1].kill();
    let start = Instant::now();
    let err = redlock
        .lock("job", LockOptions::new().wait(Duration::from_secs(5)))
        .expect_err("no quorum");
    assert!(
        matches!(
            err,
            LockError::NoQuorum {
                reachable: 1,
                needed: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        err.to_string()
            .contains("needs 2 Redis masters but only 1 answered"),
        "{err}"
    );

    // Back up: works again with the same client.
    servers[0].restart();
    servers[1].restart();
    let guard = redlock
        .lock("job", LockOptions::new().wait(Duration::from_secs(2)))
        .expect("quorum again");
    guard.check().expect("held");
}

#[test]
fn redlock_excludes_across_threads() {
    let servers: Vec<common::OwnRedis> = (0..3).map(|_| common::OwnRedis::start()).collect();
    let urls: Vec<String> = servers.iter().map(common::OwnRedis::url).collect();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let redlock = Redlock::from_urls(&url_refs, config()).expect("client");
    let inside = AtomicUsize::new(0);
    let overlaps = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    let guard = redlock
                        .lock(
                            "shared",
                            LockOptions::new()
                                .ttl(Duration::from_secs(5))
                                .wait(Duration::from_secs(30)),
                        )
                        .expect("lock");
                    if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_micros(300));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                    drop(guard);
                }
            });
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), 100);
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
}
