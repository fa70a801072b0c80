//! `#[derive(Versioned)]` against real PostgreSQL, MariaDB and SQLite.

#![allow(missing_docs, unreachable_pub)]

mod common;

use diesel::prelude::*;
use manna_diesel::{retry_on_conflict, OptimisticLockError, RetryPolicy, Versioned};

diesel::table! {
    items (id) {
        id -> BigInt,
        name -> Text,
        counter -> BigInt,
        version -> Integer,
    }
}

diesel::table! {
    ledger (account, entry) {
        account -> Text,
        entry -> Integer,
        memo -> Text,
        lock_version -> BigInt,
    }
}

#[derive(
    Queryable, Selectable, Identifiable, AsChangeset, Insertable, Versioned, Clone, Debug, PartialEq,
)]
#[diesel(table_name = items)]
pub struct Item {
    pub id: i64,
    pub name: String,
    pub counter: i64,
    pub version: i32,
}

/// A composite key, an i64 version under another name, and a renamed column.
#[derive(
    Queryable, Selectable, Identifiable, AsChangeset, Insertable, Versioned, Clone, Debug, PartialEq,
)]
#[diesel(table_name = ledger, primary_key(account, entry))]
#[manna(version = revision)]
pub struct Entry {
    pub account: String,
    pub entry: i32,
    pub memo: String,
    #[diesel(column_name = lock_version)]
    pub revision: i64,
}

fn item(id: i64) -> Item {
    Item {
        id,
        name: format!("item {id}"),
        counter: 0,
        version: 1,
    }
}

/// Fast retries for tests with heavy contention.
fn eager() -> RetryPolicy {
    RetryPolicy::default()
        .base_delay(std::time::Duration::from_micros(500))
        .max_delay(std::time::Duration::from_millis(20))
        .max_attempts(10_000)
}

macro_rules! backend_tests {
    ($name:ident, $db:ty, $threads:expr, $per_thread:expr) => {
        mod $name {
            use super::*;

            fn setup() -> $db {
                let db = <$db>::new();
                let mut conn = db.conn();
                diesel::sql_query(
                    "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, \
                     counter BIGINT NOT NULL, version INTEGER NOT NULL)",
                )
                .execute(&mut conn)
                .expect("create items");
                diesel::sql_query(
                    "CREATE TABLE ledger (account VARCHAR(50) NOT NULL, entry INTEGER NOT NULL, \
                     memo VARCHAR(100) NOT NULL, lock_version BIGINT NOT NULL, PRIMARY KEY (account, entry))",
                )
                .execute(&mut conn)
                .expect("create ledger");
                diesel::insert_into(items::table).values(&item(1)).execute(&mut conn).expect("insert");
                db
            }

            fn load(conn: &mut <$db as common::Fresh>::Conn, id: i64) -> Item {
                items::table.find(id).select(Item::as_select()).first(conn).expect("load")
            }

            #[test]
            fn first_writer_wins_and_the_loser_is_unchanged() {
                let db = setup();
                let (mut a, mut b) = (db.conn(), db.conn());
                let mut first = load(&mut a, 1);
                let mut second = load(&mut b, 1);

                first.update_with_lock(&mut a, items::name.eq("first")).expect("first update");
                assert_eq!(first.version, 2);

                let before = second.clone();
                let err = second.update_with_lock(&mut b, items::name.eq("second")).expect_err("stale update");
                match &err {
                    OptimisticLockError::Conflict { table, id, expected_version } => {
                        assert_eq!((*table, id.as_str(), *expected_version), ("items", "1", 1));
                    }
                    other => panic!("expected Conflict, got {other:?}"),
                }
                assert!(err.to_string().contains("reload the row"), "{err}");
                assert_eq!(second, before, "a failed write changes nothing in memory");

                let row = load(&mut a, 1);
                assert_eq!((row.name.as_str(), row.version), ("first", 2));
            }

            #[test]
            fn save_and_delete_refuse_a_stale_version() {
                let db = setup();
                let mut conn = db.conn();
                let mut fresh = load(&mut conn, 1);
                let mut stale = fresh.clone();

                fresh.name = "saved".into();
                fresh.counter = 7;
                fresh.save_with_lock(&mut conn).expect("save");
                assert_eq!(fresh.version, 2);
                assert_eq!(load(&mut conn, 1), fresh);

                stale.name = "lost update".into();
                let before = stale.clone();
                assert!(stale.save_with_lock(&mut conn).expect_err("stale save").is_conflict());
                assert_eq!(stale, before);
                assert!(stale.delete_with_lock(&mut conn).expect_err("stale delete").is_conflict());
                assert_eq!(load(&mut conn, 1), fresh, "the row is intact");

                fresh.delete_with_lock(&mut conn).expect("delete");
                let count: i64 = items::table.count().get_result(&mut conn).expect("count");
                assert_eq!(count, 0);

                // Gone now: told apart from a conflict.
                let err = fresh.update_with_lock(&mut conn, items::name.eq("x")).expect_err("row gone");
                assert!(matches!(err, OptimisticLockError::NotFound { .. }), "{err:?}");
                assert!(err.to_string().contains("no longer exists"));
            }

            #[test]
            fn composite_keys_renamed_columns_and_i64_versions() {
                let db = setup();
                let mut conn = db.conn();
                let rows = vec![
                    Entry { account: "acme".into(), entry: 1, memo: "a".into(), revision: 10 },
                    Entry { account: "acme".into(), entry: 2, memo: "b".into(), revision: 10 },
                ];
                diesel::insert_into(ledger::table).values(&rows).execute(&mut conn).expect("insert");
                let mut e = rows[1].clone();
                let mut stale = e.clone();
                e.update_with_lock(&mut conn, ledger::memo.eq("b2")).expect("update");
                assert_eq!(e.revision, 11);
                e.memo = "b3".into();
                e.save_with_lock(&mut conn).expect("save");
                let err = stale.update_with_lock(&mut conn, ledger::memo.eq("zz")).expect_err("stale");
                assert!(err.to_string().contains("(\"acme\", 2)"), "{err}");
                let all: Vec<Entry> =
                    ledger::table.order(ledger::entry).select(Entry::as_select()).load(&mut conn).expect("load");
                assert_eq!(all[0], rows[0], "the other row of the same account is untouched");
                assert_eq!((all[1].memo.as_str(), all[1].revision), ("b3", 12));
            }

            #[test]
            fn no_lost_updates_under_contention() {
                let db = setup();
                let threads: i64 = $threads;
                let per_thread: i64 = $per_thread;
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        let db = &db;
                        s.spawn(move || {
                            let mut conn = db.conn();
                            for _ in 0..per_thread {
                                retry_on_conflict(&eager(), &mut conn, |conn| {
                                    let mut it = load(conn, 1);
                                    let next = it.counter + 1;
                                    it.update_with_lock(conn, items::counter.eq(next))
                                })
                                .expect("increment");
                            }
                        });
                    }
                });
                let mut conn = db.conn();
                let row = load(&mut conn, 1);
                assert_eq!(row.counter, threads * per_thread, "lost updates");
                assert_eq!(i64::from(row.version), 1 + threads * per_thread);
            }
        }
    };
}

backend_tests!(postgres, common::PgDb, 8, 200);
backend_tests!(mysql, common::MysqlDb, 8, 200);
backend_tests!(sqlite, common::SqliteDb, 4, 100);

#[test]
fn retries_give_up_with_the_last_conflict_and_count() {
    let before = manna_diesel::lock_stats();
    let policy = RetryPolicy::default()
        .base_delay(std::time::Duration::ZERO)
        .max_attempts(3);
    let mut calls = 0;
    let result: Result<(), _> = retry_on_conflict(&policy, &mut (), |_| {
        calls += 1;
        Err(OptimisticLockError::Conflict {
            table: "t",
            id: calls.to_string(),
            expected_version: 1,
        })
    });
    assert_eq!(calls, 3);
    match result {
        Err(OptimisticLockError::Conflict { id, .. }) => {
            assert_eq!(id, "3", "the last error is returned")
        }
        other => panic!("{other:?}"),
    }
    let after = manna_diesel::lock_stats();
    assert!(after.retries >= before.retries + 2 && after.exhausted > before.exhausted);

    // Other errors are not retried.
    let mut calls = 0;
    let result: Result<(), _> = retry_on_conflict(&policy, &mut (), |_| {
        calls += 1;
        Err(OptimisticLockError::NotFound {
            table: "t",
            id: "1".into(),
        })
    });
    assert_eq!(calls, 1);
    assert!(matches!(result, Err(OptimisticLockError::NotFound { .. })));
}

#[test]
fn backoff_is_bounded_and_jittered() {
    let policy = RetryPolicy::default()
        .base_delay(std::time::Duration::from_millis(10))
        .max_delay(std::time::Duration::from_millis(100));
    for attempt in 0..40 {
        let cap = std::time::Duration::from_millis(10 * 2u64.saturating_pow(attempt).min(10));
        assert!(policy.backoff(attempt) <= cap);
    }
    let samples: std::collections::HashSet<_> = (0..50).map(|_| policy.backoff(5)).collect();
    assert!(samples.len() > 10, "full jitter gives varied delays");
}
