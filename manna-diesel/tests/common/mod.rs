//! Real databases for the integration tests, each test in its own space:
//! a PostgreSQL schema, a MariaDB database, or an SQLite file, created
//! fresh and dropped afterwards, so tests run in parallel.
//!
//! Servers: PostgreSQL at `MANNA_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and MariaDB/MySQL at
//! `MANNA_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).
//! A server that does not answer fails the test with the command that starts it.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};

use diesel::prelude::*;

const PG_START: &str = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";
const MYSQL_START: &str =
    "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd";

/// A name no other test (or test process) uses.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn pg_url() -> String {
    std::env::var("MANNA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn mysql_url() -> String {
    std::env::var("MANNA_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A PostgreSQL schema of its own; every connection from [`PgDb::conn`] uses it.
pub struct PgDb {
    pub url: String,
    pub schema: String,
}

impl PgDb {
    pub fn new() -> Self {
        let url = pg_url();
        let schema = unique_name("manna_t");
        let mut conn = PgConnection::establish(&url).unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at {url} ({e}). Start it with: {PG_START}")
        });
        diesel::sql_query(format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .expect("create schema");
        Self { url, schema }
    }

    pub fn conn(&self) -> PgConnection {
        let mut conn = PgConnection::establish(&self.url).expect("PostgreSQL connection");
        diesel::sql_query(format!("SET search_path TO {}", self.schema))
            .execute(&mut conn)
            .expect("set search_path");
        conn
    }

    /// A URL whose connections land in this schema (for tools that take a URL).
    pub fn scoped_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.url, self.schema)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.url) {
            let _ = diesel::sql_query(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
                .execute(&mut conn);
        }
    }
}

/// A MariaDB/MySQL database of its own.
pub struct MysqlDb {
    pub server_url: String,
    pub url: String,
    pub name: String,
}

impl MysqlDb {
    pub fn new() -> Self {
        let server_url = mysql_url();
        let name = unique_name("manna_t");
        let mut conn = MysqlConnection::establish(&server_url).unwrap_or_else(|e| {
            panic!("MariaDB/MySQL is not reachable at {server_url} ({e}). Start it with: {MYSQL_START}")
        });
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create database");
        let base = server_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or_else(|| server_url.clone());
        Self {
            url: format!("{base}/{name}"),
            server_url,
            name,
        }
    }

    pub fn conn(&self) -> MysqlConnection {
        MysqlConnection::establish(&self.url).expect("MariaDB connection")
    }
}

impl Drop for MysqlDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = MysqlConnection::establish(&self.server_url) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {}", self.name))
                .execute(&mut conn);
        }
    }
}

/// An SQLite database file in a temporary directory, in WAL mode with a busy timeout.
pub struct SqliteDb {
    _dir: tempfile::TempDir,
    pub url: String,
}

impl SqliteDb {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = dir.path().join("test.db").to_string_lossy().into_owned();
        let db = Self { _dir: dir, url };
        let mut conn = db.conn();
        diesel::sql_query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .expect("WAL");
        db
    }

    pub fn conn(&self) -> SqliteConnection {
        let mut conn = SqliteConnection::establish(&self.url).expect("SQLite connection");
        diesel::sql_query("PRAGMA busy_timeout = 10000")
            .execute(&mut conn)
            .expect("busy timeout");
        conn
    }
}

/// The connection type of each database space, for the per-backend test macros.
pub trait Fresh {
    type Conn;
}

impl Fresh for PgDb {
    type Conn = PgConnection;
}

impl Fresh for MysqlDb {
    type Conn = MysqlConnection;
}

impl Fresh for SqliteDb {
    type Conn = SqliteConnection;
}
