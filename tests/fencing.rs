//! Fencing tokens from manna-lock guarding a versioned manna-diesel write on
//! PostgreSQL: a holder that paused past its ttl wakes up after a new holder
//! wrote, and its late write is rejected by `fence <= token`.

#![allow(missing_docs, unreachable_pub)]

use std::time::Duration;

use diesel::prelude::*;
use manna_diesel::{OptimisticLockError, Versioned};
use manna_lock::{DistributedLock, LockConfig, LockOptions};

diesel::table! {
    documents (id) {
        id -> BigInt,
        body -> Text,
        fence -> BigInt,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Identifiable, AsChangeset, Versioned, Clone, Debug)]
#[diesel(table_name = documents)]
pub struct Document {
    pub id: i64,
    pub body: String,
    pub fence: i64,
    pub version: i32,
}

fn pg() -> (PgConnection, String) {
    let url = std::env::var("MANNA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = PgConnection::establish(&url).unwrap_or_else(|e| {
        panic!("PostgreSQL is not reachable at {url} ({e}); start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
    });
    let schema = format!("manna_fence_{}", std::process::id());
    diesel::sql_query(format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .expect("schema");
    diesel::sql_query(format!("SET search_path TO {schema}"))
        .execute(&mut conn)
        .expect("search_path");
    (conn, schema)
}

/// Writes under the lock: version checked, and `fence <= token`, and records the token.
fn write(
    conn: &mut PgConnection,
    doc: &mut Document,
    token: u64,
    body: &str,
) -> Result<(), OptimisticLockError> {
    let token = i64::try_from(token).expect("fence fits i64");
    doc.update_with_lock_if(
        conn,
        (documents::body.eq(body), documents::fence.eq(token)),
        documents::fence.le(token),
    )
}

#[test]
fn a_paused_holders_late_write_is_rejected() {
    let redis_url =
        std::env::var("MANNA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let prefix = format!("manna:test:fence:{}:", std::process::id());
    let locks = DistributedLock::from_url_with(&redis_url, LockConfig::default().prefix(prefix))
        .expect("redis client");
    let (mut conn, schema) = pg();
    diesel::sql_query("CREATE TABLE documents (id BIGINT PRIMARY KEY, body TEXT NOT NULL, fence BIGINT NOT NULL, version INTEGER NOT NULL)")
        .execute(&mut conn)
        .expect("table");
    diesel::sql_query("INSERT INTO documents VALUES (1, 'original', 0, 1)")
        .execute(&mut conn)
        .expect("row");

    // A takes the lock and reads, then pauses (GC, swap...) past its ttl, without auto-extension.
    let a = locks
        .lock("doc:1", LockOptions::new().ttl(Duration::from_millis(300)).auto_extend(false))
        .unwrap_or_else(|e| panic!("Redis at {redis_url}: {e}; start it with: redis-server --daemonize yes --port 6379 --save \"\" --appendonly no"));
    let mut a_doc: Document = documents::table
        .find(1)
        .select(Document::as_select())
        .first(&mut conn)
        .expect("load");
    std::thread::sleep(Duration::from_millis(400));

    // B takes the expired lock, reads and writes.
    let b = locks
        .lock("doc:1", LockOptions::new().wait(Duration::from_secs(2)))
        .expect("B locks");
    assert!(b.fencing_token() > a.fencing_token());
    let mut b_doc: Document = documents::table
        .find(1)
        .select(Document::as_select())
        .first(&mut conn)
        .expect("load");
    write(&mut conn, &mut b_doc, b.fencing_token(), "written by B").expect("B writes");

    // A wakes up: its lock is gone, and its write is refused.
    assert!(a.check().is_err(), "A's lock is known lost");
    let err = write(&mut conn, &mut a_doc, a.fencing_token(), "late write by A")
        .expect_err("A's late write");
    assert!(err.is_conflict(), "{err}");
    let b_fence = i64::try_from(b.fencing_token()).expect("fits");
    drop((a, b));

    let row: Document = documents::table
        .find(1)
        .select(Document::as_select())
        .first(&mut conn)
        .expect("load");
    assert_eq!(row.body, "written by B");
    assert_eq!(row.fence, b_fence, "the row records B's fencing token");

    // The fence alone also refuses a stale holder that has the current version.
    let mut fresh = row.clone();
    let stale_token = u64::try_from(row.fence - 1).expect("positive");
    assert!(write(&mut conn, &mut fresh, stale_token, "stale fence")
        .expect_err("fenced")
        .is_conflict());

    diesel::sql_query(format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .expect("drop");
}
