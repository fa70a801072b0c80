//! Redis for the lock tests: the shared server (a unique key prefix per
//! test), or a `redis-server` of the test's own on a free port for tests
//! that kill it.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use manna_lock::{DistributedLock, LockConfig};

pub const REDIS_START: &str = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log";

pub fn redis_url() -> String {
    std::env::var("MANNA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

pub fn unique_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "manna:test:{}:{}:{nanos:x}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A client on the shared Redis with a key prefix of its own.
pub fn locks() -> (DistributedLock, String) {
    let prefix = unique_prefix();
    let url = redis_url();
    let mut conn = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|e| {
            panic!("Redis is not reachable at {url} ({e}). Start it with: {REDIS_START}")
        });
    let _: String = redis::cmd("PING").query(&mut conn).expect("PING");
    let locks = DistributedLock::from_url_with(&url, LockConfig::default().prefix(prefix.clone()))
        .expect("client");
    (locks, prefix)
}

/// A raw connection to the shared Redis (for GET/SET in tests).
pub fn raw() -> redis::Connection {
    redis::Client::open(redis_url().as_str())
        .expect("url")
        .get_connection()
        .expect("connection")
}

/// A `redis-server` of this test's own, stopped on drop.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let mut me = Self { port, child: None };
        me.restart();
        me
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: install Debian's redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = redis::Client::open(self.url().as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("own redis-server on port {} did not start", self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
