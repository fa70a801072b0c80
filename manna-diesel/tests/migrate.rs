//! The re-encryption engine on real PostgreSQL, MariaDB and SQLite: full
//! conversion of 20,000 rows, idempotence, a concurrent application writer,
//! undecryptable rows, rotation scope, and the Diesel migration wrapper.
//! In its own test binary because it installs the process-wide keyring.

#![allow(missing_docs, unreachable_pub)]

mod common;

use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use manna_crypto::{classify, Format, Key, Keyring, LegacyKey};
use manna_diesel::migrate::{census, MigrationError, Reencryption, Scope};
use manna_diesel::Encrypted;

diesel::table! {
    items (id) {
        id -> BigInt,
        secret -> Nullable<Text>,
    }
}

const CONTEXT: &str = "items.secret";

#[derive(Encrypted, PartialEq)]
#[manna(context = "items.secret")]
pub struct Secret(pub String);

const PRIMARY: [u8; 32] = [0x11; 32];
const PREVIOUS: [u8; 32] = [0x22; 32];
const LEGACY_A: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const LEGACY_B: &str = "B9g0hm8b4rSVDIKaGAeRXBT3z0WT_dUGJbaw1GWFjU0=";

fn ring() -> Arc<Keyring> {
    static RING: OnceLock<Arc<Keyring>> = OnceLock::new();
    Arc::clone(RING.get_or_init(|| {
        let ring = Keyring::builder(Key::from_bytes(PRIMARY))
            .previous(Key::from_bytes(PREVIOUS))
            .legacy(LegacyKey::from_base64(LEGACY_A).expect("legacy a"))
            .legacy(LegacyKey::from_base64(LEGACY_B).expect("legacy b"))
            .build()
            .expect("ring");
        manna_crypto::set_default_keyring(
            Keyring::builder(Key::from_bytes(PRIMARY))
                .previous(Key::from_bytes(PREVIOUS))
                .legacy(LegacyKey::from_base64(LEGACY_A).expect("legacy a"))
                .legacy(LegacyKey::from_base64(LEGACY_B).expect("legacy b"))
                .build()
                .expect("ring"),
        );
        Arc::new(ring)
    }))
}

fn plaintext(id: i64) -> String {
    format!("access-sandbox-{id:06}-{}", "é".repeat((id % 23) as usize))
}

/// What row `id` holds before the migration: NULL, v1 under the previous
/// key, v1 under the primary key, or Fernet under one of two legacy keys.
fn stored(id: i64) -> Option<String> {
    let plain = plaintext(id);
    match id % 10 {
        0 => None,
        1 => Some(
            Keyring::builder(Key::from_bytes(PREVIOUS))
                .build()
                .expect("ring")
                .encrypt_string(&plain, CONTEXT.as_bytes())
                .expect("encrypt"),
        ),
        2 => Some(
            ring()
                .encrypt_string(&plain, CONTEXT.as_bytes())
                .expect("encrypt"),
        ),
        n => {
            let key = if n % 2 == 0 { LEGACY_A } else { LEGACY_B };
            Some(
                fernet::Fernet::new(key)
                    .expect("fernet key")
                    .encrypt(plain.as_bytes()),
            )
        }
    }
}

/// 20,000 rows: 2,000 NULL, 2,000 under the previous key, 2,000 already
/// under the primary key, 14,000 Fernet tokens.
const ROWS: i64 = 20_000;
const NEEDING: u64 = 16_000;
const CURRENT: u64 = 2_000;

#[derive(QueryableByName, Debug)]
struct Raw {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    secret: Option<String>,
}

#[derive(QueryableByName, Debug)]
struct AuditRow {
    #[diesel(sql_type = Text)]
    operation: String,
    #[diesel(sql_type = BigInt)]
    rows_converted: i64,
    #[diesel(sql_type = BigInt)]
    rows_skipped: i64,
    #[diesel(sql_type = BigInt)]
    rows_changed_concurrently: i64,
    #[diesel(sql_type = BigInt)]
    rows_invalid: i64,
    #[diesel(sql_type = Nullable<Text>)]
    from_format: Option<String>,
    #[diesel(sql_type = Text)]
    key_id: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    finished: bool,
}

#[derive(QueryableByName, Debug)]
struct InvalidRecord {
    #[diesel(sql_type = BigInt)]
    row_id: i64,
    #[diesel(sql_type = Text)]
    failure: String,
}

const AUDIT_SQL: &str =
    "SELECT operation, rows_converted, rows_skipped, rows_changed_concurrently, \
     rows_invalid, from_format, key_id, status, error, \
     finished_at IS NOT NULL AS finished \
     FROM manna_encryption_audit";

macro_rules! backend_tests {
    ($name:ident, $db:ty, $audit_before_read:expr, $blob:literal, $placeholder:literal) => {
        mod $name {
            use super::*;

            type Conn = <$db as common::Fresh>::Conn;

            fn setup(rows: i64) -> ($db, Conn) {
                let _ = ring();
                let db = <$db>::new();
                let mut conn = db.conn();
                diesel::sql_query("CREATE TABLE items (id BIGINT PRIMARY KEY, secret TEXT NULL)")
                    .execute(&mut conn)
                    .expect("create table");
                let values: Vec<(i64, Option<String>)> = (1..=rows).map(|id| (id, stored(id))).collect();
                for chunk in values.chunks(1000) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|(id, s)| (items::id.eq(*id), items::secret.eq(s.as_deref())))
                        .collect();
                    diesel::insert_into(items::table).values(&rows).execute(&mut conn).expect("insert");
                }
                (db, conn)
            }

            fn raw(conn: &mut Conn) -> Vec<Raw> {
                diesel::sql_query("SELECT id, secret FROM items ORDER BY id").load(conn).expect("raw")
            }

            fn audit(conn: &mut Conn) -> Vec<AuditRow> {
                diesel::sql_query(AUDIT_SQL).load(conn).expect("audit")
            }

            /// Every row is NULL where it was NULL, else v1 under the
            /// primary key holding `expected(id)`.
            fn assert_all_current(conn: &mut Conn, expected: impl Fn(i64) -> String) {
                let ring = ring();
                let rows = raw(conn);
                assert_eq!(rows.len() as i64, ROWS);
                for row in rows {
                    match (row.id % 10, row.secret) {
                        (0, None) => {}
                        (0, Some(_)) => panic!("row {} was NULL and is not", row.id),
                        (_, None) => panic!("row {} lost its value", row.id),
                        (_, Some(v)) => {
                            assert_eq!(
                                classify(&v),
                                Format::V1 { key_id: ring.primary_key_id() },
                                "row {} is not under the primary key",
                                row.id
                            );
                            let plain = ring.decrypt_string(&v, CONTEXT.as_bytes()).expect("decrypts");
                            assert_eq!(plain, expected(row.id), "row {}", row.id);
                        }
                    }
                }
            }

            #[test]
            fn converts_every_row_and_audits_the_counts() {
                let (_db, mut conn) = setup(ROWS);
                let ring = ring();
                let before = census(&mut conn, "items", "secret", "id").expect("census");
                assert_eq!((before.total, before.null, before.fernet), (ROWS as u64, 2000, 14_000));
                assert!(!before.is_complete(&ring));

                let mut batches = 0;
                let report = Reencryption::new("items", "secret", CONTEXT)
                    .batch_size(700)
                    .run_with_progress(&mut conn, &ring, |r| batches = r.batches)
                    .expect("migration");
                assert_eq!(report.converted, NEEDING);
                assert_eq!(report.skipped, CURRENT);
                assert_eq!((report.changed_concurrently, report.invalid), (0, 0));
                assert_eq!(report.scanned, 18_000, "NULLs are not read");
                assert_eq!(batches, 18_000_u64.div_ceil(700));
                assert_eq!(report.from_formats.get("fernet"), Some(&14_000));
                let prev = format!("v1:{}", Key::from_bytes(PREVIOUS).id());
                assert_eq!(report.from_formats.get(&prev), Some(&2_000));

                assert_all_current(&mut conn, plaintext);
                let after = census(&mut conn, "items", "secret", "id").expect("census");
                assert!(after.is_complete(&ring), "{after:?}");
                assert_eq!(after.null, 2000);

                let audit = audit(&mut conn);
                assert_eq!(audit.len(), 1);
                let a = &audit[0];
                assert_eq!((a.operation.as_str(), a.status.as_str()), ("migrate", "completed"));
                assert_eq!(
                    (a.rows_converted, a.rows_skipped, a.rows_changed_concurrently, a.rows_invalid),
                    (16_000, 2_000, 0, 0)
                );
                assert_eq!(a.key_id, ring.primary_key_id().to_string());
                assert_eq!(a.from_format.as_deref(), Some(format!("fernet=14000,{prev}=2000").as_str()));
                assert_eq!((a.error.as_deref(), a.finished), (None, true));

                // Idempotent: a second run writes nothing.
                let again = Reencryption::new("items", "secret", CONTEXT).run(&mut conn, &ring).expect("rerun");
                assert_eq!((again.converted, again.skipped), (0, 18_000));
                assert_all_current(&mut conn, plaintext);
            }

            #[test]
            fn concurrent_writer_keeps_its_values() {
                let (db, mut conn) = setup(ROWS);
                let ring = ring();
                // 500 random rows (not NULL ones), written through the
                // Encrypted type while the migration runs.
                let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
                let mut chosen = HashSet::new();
                while chosen.len() < 500 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let id = (seed % ROWS as u64) as i64 + 1;
                    if id % 10 != 0 {
                        chosen.insert(id);
                    }
                }
                let chosen: Vec<i64> = chosen.into_iter().collect();
                let (started_tx, started_rx) = mpsc::channel();
                let writer = {
                    let chosen = chosen.clone();
                    let mut wconn = db.conn();
                    std::thread::spawn(move || {
                        started_tx.send(()).expect("signal");
                        for id in chosen {
                            diesel::update(items::table.find(id))
                                .set(items::secret.eq(Secret(format!("writer-{id}"))))
                                .execute(&mut wconn)
                                .expect("application write");
                        }
                    })
                };
                started_rx.recv().expect("writer started");
                let report = Reencryption::new("items", "secret", CONTEXT)
                    .batch_size(200)
                    .run(&mut conn, &ring)
                    .expect("migration");
                writer.join().expect("writer");
                // Finish what the writer raced with (already-current rows are skipped).
                Reencryption::new("items", "secret", CONTEXT).run(&mut conn, &ring).expect("rerun");

                let chosen: HashSet<i64> = chosen.into_iter().collect();
                assert_all_current(&mut conn, |id| {
                    if chosen.contains(&id) { format!("writer-{id}") } else { plaintext(id) }
                });
                assert!(report.converted + report.changed_concurrently <= NEEDING);
            }

            /// A row the application rewrites between the engine's read and
            /// its write is left alone and counted: the writer holds the row
            /// lock (an open transaction) while the engine reads, and
            /// commits while the engine waits to write.
            #[test]
            fn compare_and_swap_leaves_a_concurrent_write_alone() {
                let (db, mut conn) = setup(20);
                let ring = ring();
                let (locked_tx, locked_rx) = mpsc::channel();
                let mut wconn = db.conn();
                let writer = std::thread::spawn(move || {
                    wconn
                        .transaction::<_, diesel::result::Error, _>(|c| {
                            diesel::update(items::table.find(3))
                                .set(items::secret.eq(Secret("written by the app".into())))
                                .execute(c)?;
                            locked_tx.send(()).expect("signal");
                            std::thread::sleep(Duration::from_millis(700));
                            Ok(())
                        })
                        .expect("writer transaction");
                });
                locked_rx.recv().expect("row locked");
                // SQLite has one writer at a time: an audit row written
                // before the read would wait for the application's commit.
                let report = Reencryption::new("items", "secret", CONTEXT)
                    .audit($audit_before_read)
                    .run(&mut conn, &ring)
                    .expect("migration");
                writer.join().expect("writer");
                assert_eq!(report.changed_concurrently, 1, "{report:?}");
                let value: Option<Secret> =
                    items::table.find(3).select(items::secret).first(&mut conn).expect("load");
                assert_eq!(value.map(|s| s.0).as_deref(), Some("written by the app"));
                if $audit_before_read {
                    let a = &audit(&mut conn)[0];
                    assert_eq!(a.rows_changed_concurrently, 1);
                }
            }

            #[test]
            fn garbage_stops_the_run_and_skip_invalid_records_it() {
                let (_db, mut conn) = setup(ROWS);
                let ring = ring();
                let wrong_prev = Keyring::builder(Key::from_bytes(PREVIOUS))
                    .build()
                    .expect("ring")
                    .encrypt_string("y", b"other.column")
                    .expect("encrypt");
                for (id, value) in [(5_003, "not a ciphertext at all"), (5_005, "gAAAAABgarbage"), (5_011, wrong_prev.as_str())] {
                    diesel::update(items::table.find(id))
                        .set(items::secret.eq(value))
                        .execute(&mut conn)
                        .expect("corrupt");
                }
                let before = raw(&mut conn);

                let err = Reencryption::new("items", "secret", CONTEXT)
                    .batch_size(1000)
                    .run(&mut conn, &ring)
                    .expect_err("garbage stops the run");
                let MigrationError::InvalidRows { rows } = &err else { panic!("{err}") };
                assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![5_003, 5_005, 5_011]);
                let message = err.to_string();
                assert!(message.contains("id 5003") && message.contains("id 5011"), "{message}");
                for secret in ["not a ciphertext", "garbage", &wrong_prev[9..]] {
                    assert!(!message.contains(secret), "the message leaks a value: {message}");
                }
                // Pages hold 1000 non-NULL rows; the bad rows are in the fifth.
                // The four before it were committed; nothing of it (or after) was.
                let after = raw(&mut conn);
                let mut ordinal = 0;
                for (b, a) in before.iter().zip(&after) {
                    if a.secret.is_none() {
                        continue;
                    }
                    ordinal += 1;
                    if ordinal > 4_000 {
                        assert_eq!(a.secret, b.secret, "row {} (in or after the bad batch) changed", a.id);
                    } else {
                        let v = a.secret.as_deref().unwrap_or_default();
                        assert_eq!(classify(v), Format::V1 { key_id: ring.primary_key_id() }, "row {}", a.id);
                    }
                }
                let audit_rows = audit(&mut conn);
                assert_eq!(audit_rows[0].status, "failed");
                assert!(audit_rows[0].error.as_deref().unwrap_or_default().contains("id 5005"));

                let report = Reencryption::new("items", "secret", CONTEXT)
                    .skip_invalid(true)
                    .run(&mut conn, &ring)
                    .expect("skip invalid");
                assert_eq!(report.invalid, 3);
                let recorded: Vec<InvalidRecord> = diesel::sql_query(
                    "SELECT row_id, failure FROM manna_encryption_audit_invalid_rows ORDER BY row_id",
                )
                .load(&mut conn)
                .expect("invalid rows");
                assert_eq!(recorded.iter().map(|r| r.row_id).collect::<Vec<_>>(), vec![5_003, 5_005, 5_011]);
                assert!(recorded[0].failure.contains("neither a manna envelope nor a Fernet token"));
                assert!(recorded[2].failure.contains("decryption failed"));
                let census = census(&mut conn, "items", "secret", "id").expect("census");
                assert_eq!(census.remaining(&ring), 3, "{census:?}");
            }

            #[test]
            fn rotate_scope_moves_previous_key_rows_only() {
                let (_db, mut conn) = setup(2_000);
                let ring = ring();
                let report = Reencryption::new("items", "secret", CONTEXT)
                    .scope(Scope::PreviousKeys)
                    .run(&mut conn, &ring)
                    .expect("rotate");
                assert_eq!(report.converted, 200);
                assert_eq!(report.skipped, 1_600, "Fernet and current rows are left");
                let census = census(&mut conn, "items", "secret", "id").expect("census");
                assert_eq!(census.fernet, 1_400);
                assert_eq!(census.v1.len(), 1, "only the primary key remains among v1 rows");
                assert_eq!(audit(&mut conn)[0].operation, "rotate");
            }

            /// Fernet tokens carry no context, so a wrong one is caught on
            /// the first value already under the primary key, before any write.
            #[test]
            fn a_wrong_context_stops_the_run_before_writing() {
                let (_db, mut conn) = setup(1_000);
                let ring = ring();
                let before = raw(&mut conn);
                let err = Reencryption::new("items", "secret", "items.secert")
                    .run(&mut conn, &ring)
                    .expect_err("wrong context");
                assert!(matches!(err, MigrationError::ContextMismatch { id: 2, .. }), "{err}");
                assert!(err.to_string().contains("\"items.secert\""), "{err}");
                let after = raw(&mut conn);
                assert!(before.iter().zip(&after).all(|(b, a)| b.secret == a.secret));
            }

            /// Keyset pages start at the smallest possible id, inclusive.
            #[test]
            fn negative_and_extreme_ids_are_converted() {
                let (_db, mut conn) = setup(0);
                let ring = ring();
                for id in [i64::MIN, -5, 0, i64::MAX] {
                    diesel::insert_into(items::table)
                        .values((items::id.eq(id), items::secret.eq(stored(3))))
                        .execute(&mut conn)
                        .expect("insert");
                }
                let report = Reencryption::new("items", "secret", CONTEXT)
                    .batch_size(2)
                    .run(&mut conn, &ring)
                    .expect("migration");
                assert_eq!((report.converted, report.last_id), (4, Some(i64::MAX)));
                let census = census(&mut conn, "items", "secret", "id").expect("census");
                assert_eq!((census.total, census.remaining(&ring)), (4, 0));
            }

            /// Binary envelopes in a BYTEA/BLOB column (`sql_type = Binary`),
            /// and a Fernet token stored as bytes, end as binary envelopes
            /// under the primary key.
            #[test]
            fn binary_column() {
                let _ = ring();
                let db = <$db>::new();
                let mut conn = db.conn();
                diesel::sql_query(format!("CREATE TABLE docs (id BIGINT PRIMARY KEY, scan {} NULL)", $blob))
                    .execute(&mut conn)
                    .expect("create table");
                let ring = ring();
                let previous = Keyring::builder(Key::from_bytes(PREVIOUS)).build().expect("ring");
                let plain = |id: i64| format!("%PDF-{id}\u{0}\u{ff}").into_bytes();
                for id in 1..=301_i64 {
                    let value = match id % 3 {
                        _ if id == 301 => Some(stored(3).expect("fernet").into_bytes()),
                        0 => None,
                        1 => Some(previous.encrypt_bytes(&plain(id), b"docs.scan").expect("encrypt")),
                        _ => Some(ring.encrypt_bytes(&plain(id), b"docs.scan").expect("encrypt")),
                    };
                    diesel::sql_query(format!("INSERT INTO docs (id, scan) VALUES ({id}, {})", $placeholder))
                        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Binary>, _>(value)
                        .execute(&mut conn)
                        .expect("insert");
                }
                let report = Reencryption::new("docs", "scan", "docs.scan")
                    .binary(true)
                    .batch_size(64)
                    .run(&mut conn, &ring)
                    .expect("binary migration");
                assert_eq!((report.converted, report.skipped), (101, 100), "{report:?}");
                let census = manna_diesel::migrate::census_binary(&mut conn, "docs", "scan", "id").expect("census");
                assert!(census.is_complete(&ring), "{census:?}");
                assert_eq!(census.null, 100);

                #[derive(QueryableByName)]
                struct Doc {
                    #[diesel(sql_type = BigInt)]
                    id: i64,
                    #[diesel(sql_type = Nullable<diesel::sql_types::Binary>)]
                    scan: Option<Vec<u8>>,
                }
                let docs: Vec<Doc> = diesel::sql_query("SELECT id, scan FROM docs ORDER BY id").load(&mut conn).expect("load");
                for doc in docs {
                    let Some(scan) = doc.scan else { continue };
                    assert_eq!(scan[0], manna_crypto::VERSION, "row {} is a binary envelope", doc.id);
                    let expected = if doc.id == 301 { plaintext(3).into_bytes() } else { plain(doc.id) };
                    assert_eq!(ring.decrypt_bytes(&scan, b"docs.scan").expect("decrypts"), expected, "row {}", doc.id);
                }
            }

            #[test]
            fn dry_run_writes_nothing() {
                let (_db, mut conn) = setup(1_000);
                let ring = ring();
                let before = raw(&mut conn);
                let report = Reencryption::new("items", "secret", CONTEXT)
                    .dry_run(true)
                    .run(&mut conn, &ring)
                    .expect("dry run");
                assert_eq!(report.converted, 800);
                let after = raw(&mut conn);
                assert!(before.iter().zip(&after).all(|(b, a)| b.secret == a.secret));
            }
        }
    };
}

backend_tests!(postgres, common::PgDb, true, "BYTEA", "$1");
backend_tests!(mysql, common::MysqlDb, true, "BLOB", "?");
backend_tests!(sqlite, common::SqliteDb, false, "BLOB", "?");

#[test]
fn the_sql_migration_creates_the_audit_tables_of_the_engine() {
    let up = include_str!("../../migrations/2025-09-18-060000_upgrade_to_aes256_gcm/up.sql");
    let begin = up.find("-- manna:audit-ddl:begin\n").expect("begin marker") + 25;
    let end = up.find("-- manna:audit-ddl:end").expect("end marker");
    assert_eq!(&up[begin..end], manna_diesel::migrate::AUDIT_TABLES_DDL);
}

/// The upgrade widens no column: a v1 text envelope is never longer than
/// the Fernet token it replaces.
#[test]
fn v1_text_is_never_longer_than_fernet() {
    let ring = ring();
    let fernet = fernet::Fernet::new(LEGACY_A).expect("key");
    for len in 0..=4096 {
        let plain = vec![b'a'; len];
        let token = fernet.encrypt(&plain);
        let v1 = ring
            .encrypt_to_text(&plain, CONTEXT.as_bytes())
            .expect("encrypt");
        assert!(
            v1.len() <= token.len(),
            "{len}: v1 {} > fernet {}",
            v1.len(),
            token.len()
        );
    }
}

#[test]
fn the_diesel_migration_runs_with_the_sql_migrations_on_postgres() {
    use diesel_migrations::{FileBasedMigrations, MigrationHarness};
    use manna_diesel::migrate::{MigrationsWith, ReencryptMigration};

    let _ = ring();
    let db = common::PgDb::new();
    let mut conn = db.conn();
    let source = || {
        MigrationsWith::new(FileBasedMigrations::from_path("../migrations").expect("migrations"))
            .and(
                ReencryptMigration::new("2025-09-18-060001_reencrypt_plaid_items")
                    .column(Reencryption::new(
                        "plaid_items",
                        "access_token",
                        "plaid_items.access_token",
                    ))
                    .column(Reencryption::new(
                        "plaid_items",
                        "notes",
                        "plaid_items.notes",
                    )),
            )
    };
    // The schema first (and the audit tables), then legacy rows, then the rest.
    let first = conn.run_next_migration(source()).expect("schema");
    assert_eq!(first.to_string(), "20250901000000");
    let legacy = fernet::Fernet::new(LEGACY_A).expect("key");
    for id in 1..=50_i64 {
        diesel::sql_query(
            "INSERT INTO plaid_items (id, name, access_token, notes) VALUES ($1, 'x', $2, $3)",
        )
        .bind::<BigInt, _>(id)
        .bind::<Text, _>(legacy.encrypt(format!("token-{id}").as_bytes()))
        .bind::<Nullable<Text>, _>((id % 2 == 0).then(|| legacy.encrypt(b"a note")))
        .execute(&mut conn)
        .expect("insert legacy row");
    }
    let applied = conn.run_pending_migrations(source()).expect("migrations");
    assert_eq!(
        applied.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        vec!["20250918060000", "20250918060001"]
    );
    let ring = ring();
    for (column, complete) in [("access_token", 50), ("notes", 25)] {
        let census = census(&mut conn, "plaid_items", column, "id").expect("census");
        assert!(census.is_complete(&ring), "{column}: {census:?}");
        assert_eq!(census.v1.values().sum::<u64>(), complete);
    }
    assert!(conn
        .pending_migrations(source())
        .expect("pending")
        .is_empty());
}

/// Many undecryptable rows: all recorded in the audit table, the first 100
/// kept in the report, and the run finishes.
#[test]
fn many_invalid_rows_are_all_recorded_and_the_report_stays_small() {
    let _ = ring();
    let db = common::SqliteDb::new();
    let mut conn = db.conn();
    diesel::sql_query("CREATE TABLE items (id BIGINT PRIMARY KEY, secret TEXT NULL)")
        .execute(&mut conn)
        .expect("create");
    for id in 1..=250_i64 {
        let value = if id % 5 == 0 {
            stored(3).expect("fernet")
        } else {
            format!("junk {id}")
        };
        diesel::insert_into(items::table)
            .values((items::id.eq(id), items::secret.eq(value)))
            .execute(&mut conn)
            .expect("insert");
    }
    let report = Reencryption::new("items", "secret", CONTEXT)
        .batch_size(64)
        .skip_invalid(true)
        .run(&mut conn, &ring())
        .expect("run");
    assert_eq!(
        (report.converted, report.invalid, report.invalid_rows.len()),
        (50, 200, 100)
    );
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let recorded: N =
        diesel::sql_query("SELECT COUNT(*) AS n FROM manna_encryption_audit_invalid_rows")
            .get_result(&mut conn)
            .expect("count");
    assert_eq!(recorded.n, 200);
}

/// Creates `items` with ten rows: 1 under the previous key, 2 under the
/// primary key, 3-9 Fernet, 10 NULL (see `stored`).
macro_rules! small_items {
    ($conn:expr) => {{
        diesel::sql_query("CREATE TABLE items (id BIGINT PRIMARY KEY, secret TEXT NULL)")
            .execute($conn)
            .expect("create table");
        let rows: Vec<_> = (1..=10_i64)
            .map(|id| (items::id.eq(id), items::secret.eq(stored(id))))
            .collect();
        diesel::insert_into(items::table)
            .values(rows)
            .execute($conn)
            .expect("insert");
    }};
}

/// A batch that deadlocks with an application transaction: the database
/// rolls the batch back, the engine writes it again, and the application's
/// two rows keep its values.
///
/// The application locks row 6; the batch locks 1, 3, 4 and 5 (in id order)
/// and waits for 6; the application then asks for row 3. `$setup` runs on
/// its own connection first; `$prepare` runs first in the application's
/// transaction and makes the batch the victim the database picks.
macro_rules! deadlock_test {
    ($name:ident, $db:ty, $setup:expr, $prepare:expr) => {
        #[test]
        fn $name() {
            let ring = ring();
            let db = <$db>::new();
            let mut conn = db.conn();
            small_items!(&mut conn);
            $setup(&mut conn).expect("setup");

            let (locked_tx, locked_rx) = mpsc::channel();
            let mut app = db.conn();
            let writer = std::thread::spawn(move || {
                app.transaction::<_, diesel::result::Error, _>(|c| {
                    $prepare(&mut *c)?;
                    diesel::update(items::table.find(6))
                        .set(items::secret.eq(Secret("app-6".into())))
                        .execute(c)?;
                    locked_tx.send(()).expect("signal");
                    // By now the batch holds rows 1-5 and waits for row 6.
                    std::thread::sleep(Duration::from_millis(500));
                    diesel::update(items::table.find(3))
                        .set(items::secret.eq(Secret("app-3".into())))
                        .execute(c)?;
                    std::thread::sleep(Duration::from_millis(100));
                    Ok(())
                })
                .expect("the application's transaction is not the deadlock victim");
            });
            locked_rx.recv().expect("row 6 locked");
            let report = Reencryption::new("items", "secret", CONTEXT)
                .run(&mut conn, &ring)
                .expect("the deadlocked batch is written again");
            writer.join().expect("writer");

            assert!(report.batches_retried >= 1, "{report:?}");
            assert_eq!(
                (report.converted, report.changed_concurrently),
                (6, 2),
                "{report:?}"
            );
            for id in 1..=9_i64 {
                let value: Option<Secret> = items::table
                    .find(id)
                    .select(items::secret)
                    .first(&mut conn)
                    .expect("load");
                let expected = match id {
                    3 | 6 => format!("app-{id}"),
                    _ => plaintext(id),
                };
                assert_eq!(value.map(|s| s.0), Some(expected), "row {id}");
            }
            let census = census(&mut conn, "items", "secret", "id").expect("census");
            assert!(census.is_complete(&ring), "{census:?}");
            let audit: Vec<AuditRow> = diesel::sql_query(AUDIT_SQL).load(&mut conn).expect("audit");
            assert_eq!(
                (
                    audit[0].rows_converted,
                    audit[0].rows_changed_concurrently,
                    audit[0].status.as_str()
                ),
                (6, 2, "completed")
            );
        }
    };
}

// PostgreSQL: the session whose `deadlock_timeout` runs out after the cycle
// formed is rolled back; the engine's is 1 s, the application's 10 s.
deadlock_test!(
    postgres_a_batch_that_loses_a_deadlock_is_written_again,
    common::PgDb,
    |_: &mut PgConnection| QueryResult::Ok(()),
    |c: &mut PgConnection| diesel::sql_query("SET LOCAL deadlock_timeout = '10s'")
        .execute(c)
        .map(drop)
);

// InnoDB rolls back the transaction that changed fewer rows: the
// application first writes 200 rows elsewhere. (The table is created
// beforehand: DDL would commit the application's transaction.)
deadlock_test!(
    mysql_a_batch_that_loses_a_deadlock_is_written_again,
    common::MysqlDb,
    |c: &mut MysqlConnection| diesel::sql_query("CREATE TABLE app_log (n INT NOT NULL)").execute(c),
    |c: &mut MysqlConnection| diesel::sql_query(
        "INSERT INTO app_log (n) SELECT seq FROM seq_1_to_200"
    )
    .execute(c)
    .map(drop)
);

/// SQLite with Diesel's default of no busy timeout: while the application
/// holds the write lock, the batch fails with `database is locked` at once;
/// the engine writes it again after a pause, once the application committed.
#[test]
fn sqlite_a_batch_that_finds_the_database_locked_is_written_again() {
    let ring = ring();
    let db = common::SqliteDb::new();
    let mut conn = db.conn();
    small_items!(&mut conn);
    // The engine's own connection, with no busy timeout.
    let mut engine = SqliteConnection::establish(&db.url).expect("SQLite connection");

    let (locked_tx, locked_rx) = mpsc::channel();
    let mut app = db.conn();
    let writer = std::thread::spawn(move || {
        app.transaction::<_, diesel::result::Error, _>(|c| {
            diesel::update(items::table.find(4))
                .set(items::secret.eq(Secret("app-4".into())))
                .execute(c)?;
            locked_tx.send(()).expect("signal");
            std::thread::sleep(Duration::from_millis(100));
            Ok(())
        })
        .expect("application transaction");
    });
    locked_rx.recv().expect("write lock held");
    // The audit row would be written before the read, while the lock is held.
    let report = Reencryption::new("items", "secret", CONTEXT)
        .audit(false)
        .run(&mut engine, &ring)
        .expect("the batch is written again once the lock is free");
    writer.join().expect("writer");

    assert!(report.batches_retried >= 1, "{report:?}");
    assert_eq!(
        (report.converted, report.changed_concurrently),
        (7, 1),
        "{report:?}"
    );
    let value: Option<Secret> = items::table
        .find(4)
        .select(items::secret)
        .first(&mut conn)
        .expect("load");
    assert_eq!(value.map(|s| s.0).as_deref(), Some("app-4"));
    assert!(census(&mut conn, "items", "secret", "id")
        .expect("census")
        .is_complete(&ring));
}
