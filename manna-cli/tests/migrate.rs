//! `manna migrate`, `rotate` and `verify`, run as a user runs them: the real
//! binary against real PostgreSQL, MariaDB and SQLite databases.

#![allow(missing_docs, unreachable_pub)]

#[path = "../../manna-diesel/tests/common/mod.rs"]
mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use manna_crypto::{classify, Format, Key, Keyring, LegacyKey};

const PRIMARY: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";
const PREVIOUS: [u8; 32] = [0x22; 32];
const LEGACY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const CONTEXT: &str = "items.secret";

diesel::table! {
    items (id) {
        id -> BigInt,
        secret -> Nullable<Text>,
    }
}

fn ring() -> Keyring {
    Keyring::builder(Key::from_base64(PRIMARY).expect("primary"))
        .previous(Key::from_bytes(PREVIOUS))
        .legacy(LegacyKey::from_base64(LEGACY).expect("legacy"))
        .build()
        .expect("ring")
}

fn manna(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_manna"));
    cmd.args(args)
        .env_clear()
        .env("MANNA_ENCRYPTION_KEY_AES256", PRIMARY)
        .env(
            "MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS",
            Key::from_bytes(PREVIOUS).to_base64().as_str(),
        )
        .env("MANNA_ENCRYPTION_KEY", LEGACY)
        .stdin(Stdio::null());
    cmd
}

fn run(args: &[&str]) -> Output {
    manna(args).output().expect("run manna")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The number at the end of the line of `output` that starts with `label`.
fn field(output: &str, label: &str) -> u64 {
    output
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{output}"))
}

fn plaintext(id: i64) -> String {
    format!("token-{id}")
}

/// Row `id`: NULL every tenth, v1 under the previous key every tenth, else Fernet.
fn stored(id: i64) -> Option<String> {
    match id % 10 {
        0 => None,
        1 => Some(
            Keyring::builder(Key::from_bytes(PREVIOUS))
                .build()
                .expect("ring")
                .encrypt_string(&plaintext(id), CONTEXT.as_bytes())
                .expect("encrypt"),
        ),
        _ => Some(
            fernet::Fernet::new(LEGACY)
                .expect("key")
                .encrypt(plaintext(id).as_bytes()),
        ),
    }
}

#[derive(QueryableByName)]
struct Raw {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    secret: Option<String>,
}

macro_rules! fill {
    ($conn:expr, $rows:expr) => {{
        let conn = $conn;
        diesel::sql_query("CREATE TABLE items (id BIGINT PRIMARY KEY, secret TEXT NULL)")
            .execute(conn)
            .expect("create");
        let all: Vec<(i64, Option<String>)> = (1..=$rows).map(|id| (id, stored(id))).collect();
        for chunk in all.chunks(1000) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|(id, s)| (items::id.eq(*id), items::secret.eq(s.as_deref())))
                .collect();
            diesel::insert_into(items::table)
                .values(&rows)
                .execute(conn)
                .expect("insert");
        }
    }};
}

/// Every non-NULL row is v1 under the primary key and decrypts to its
/// original plaintext (so nothing was encrypted twice).
macro_rules! assert_complete {
    ($conn:expr, $rows:expr) => {{
        let ring = ring();
        let rows: Vec<Raw> = diesel::sql_query("SELECT id, secret FROM items ORDER BY id")
            .load($conn)
            .expect("load");
        assert_eq!(rows.len() as i64, $rows);
        for row in rows {
            let Some(v) = row.secret else {
                assert_eq!(row.id % 10, 0, "row {} lost its value", row.id);
                continue;
            };
            assert_eq!(
                classify(&v),
                Format::V1 {
                    key_id: ring.primary_key_id()
                },
                "row {}",
                row.id
            );
            assert_eq!(
                ring.decrypt_string(&v, CONTEXT.as_bytes())
                    .expect("decrypts"),
                plaintext(row.id),
                "row {}",
                row.id
            );
        }
    }};
}

fn migrate_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "migrate",
        "--database-url",
        url,
        "--table",
        "items",
        "--column",
        "secret",
        "--context",
        CONTEXT,
    ];
    args.extend_from_slice(extra);
    args
}

fn verify(url: &str) -> Output {
    run(&[
        "verify",
        "--database-url",
        url,
        "--table",
        "items",
        "--column",
        "secret",
    ])
}

/// verify (3: incomplete) -> migrate (0) -> verify (0) -> migrate again
/// (nothing to do), on 20,000 rows: 2,000 NULL, 2,000 under the previous
/// key, 16,000 Fernet tokens.
fn migrate_then_verify(url: &str) {
    let before = verify(url);
    assert_eq!(before.status.code(), Some(3), "{}", text(&before.stderr));
    let out = text(&before.stdout);
    assert!(
        out.contains("Fernet (legacy)") && out.contains("incomplete"),
        "{out}"
    );

    let migrated = run(&migrate_args(url, &["--batch-size", "300"]));
    assert_eq!(
        migrated.status.code(),
        Some(0),
        "{}",
        text(&migrated.stderr)
    );
    let summary = text(&migrated.stdout);
    assert!(
        summary.contains("migrate items.secret: completed"),
        "{summary}"
    );
    assert_eq!(field(&summary, "re-encrypted"), 18_000);
    assert_eq!(field(&summary, "left as they were"), 0);
    assert!(
        summary.contains("found                           fernet=16000, v1:"),
        "{summary}"
    );

    let after = verify(url);
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stdout));
    assert!(text(&after.stdout).contains("complete: every value is NULL or v1"));

    let again = run(&migrate_args(url, &[]));
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(field(&text(&again.stdout), "re-encrypted"), 0);
    assert_eq!(field(&text(&again.stdout), "left as they were"), 18_000);
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Audit {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    rows_converted: i64,
    #[diesel(sql_type = BigInt)]
    rows_skipped: i64,
    #[diesel(sql_type = BigInt)]
    rows_changed_concurrently: i64,
    #[diesel(sql_type = BigInt)]
    rows_invalid: i64,
}

const AUDIT: &str =
    "SELECT status, rows_converted, rows_skipped, rows_changed_concurrently, rows_invalid \
     FROM manna_encryption_audit ORDER BY started_at, rows_converted DESC";

/// The two runs of `migrate_then_verify`, as the audit table has them.
macro_rules! assert_audited {
    ($conn:expr) => {{
        let rows: Vec<Audit> = diesel::sql_query(AUDIT).load($conn).expect("audit");
        let counts: Vec<_> = rows
            .iter()
            .map(|a| {
                (
                    a.status.as_str(),
                    a.rows_converted,
                    a.rows_skipped,
                    a.rows_changed_concurrently,
                    a.rows_invalid,
                )
            })
            .collect();
        assert_eq!(
            counts,
            [
                ("completed", 18_000, 0, 0, 0),
                ("completed", 0, 18_000, 0, 0)
            ]
        );
    }};
}

#[test]
fn postgres_migrate_and_verify() {
    let db = common::PgDb::new();
    fill!(&mut db.conn(), 20_000);
    migrate_then_verify(&db.scoped_url());
    assert_complete!(&mut db.conn(), 20_000);
    assert_audited!(&mut db.conn());
}

#[test]
fn mariadb_migrate_and_verify() {
    let db = common::MysqlDb::new();
    fill!(&mut db.conn(), 20_000);
    migrate_then_verify(&db.url.replacen("mysql://", "mariadb://", 1));
    assert_complete!(&mut db.conn(), 20_000);
    assert_audited!(&mut db.conn());
}

#[test]
fn sqlite_migrate_and_verify() {
    let db = common::SqliteDb::new();
    fill!(&mut db.conn(), 20_000);
    migrate_then_verify(&format!("sqlite://{}", db.url));
    assert_complete!(&mut db.conn(), 20_000);
    assert_audited!(&mut db.conn());
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let db = common::SqliteDb::new();
    fill!(&mut db.conn(), 1_000);
    let out = run(&migrate_args(&db.url, &["--dry-run"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("(dry run: nothing written)"), "{summary}");
    assert_eq!(field(&summary, "would be re-encrypted"), 900);
    let after = text(&verify(&db.url).stdout);
    assert_eq!(field(&after, "Fernet (legacy)"), 800);
}

#[test]
fn rotate_moves_previous_key_rows_and_leaves_fernet() {
    let db = common::SqliteDb::new();
    fill!(&mut db.conn(), 1_000);
    let mut args = migrate_args(&db.url, &[]);
    args[0] = "rotate";
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(field(&text(&out.stdout), "re-encrypted"), 100);
    let after = text(&verify(&db.url).stdout);
    assert_eq!(field(&after, "Fernet (legacy)"), 800);
}

/// SIGKILL `manna migrate` halfway through 20,000 rows, then run it again:
/// the table ends complete and correct, nothing encrypted twice.
#[test]
fn killed_halfway_then_resumed() {
    let db = common::PgDb::new();
    let mut conn = db.conn();
    fill!(&mut conn, 20_000);
    let url = db.scoped_url();
    let mut child = manna(&migrate_args(&url, &["--batch-size", "50"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn manna");

    let primary = ring().primary_key_id();
    let converted = |conn: &mut PgConnection| -> u64 {
        let census = manna_diesel::migrate::census(conn, "items", "secret", "id").expect("census");
        census.v1.get(&primary).copied().unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while converted(&mut conn) < 6_000 {
        assert!(Instant::now() < deadline, "manna migrate made no progress");
        assert!(
            child.try_wait().expect("poll").is_none(),
            "manna migrate ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let halfway = converted(&mut conn);
    assert!(
        halfway < 18_000,
        "killed after it finished ({halfway} rows converted)"
    );

    let resumed = run(&migrate_args(&url, &[]));
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_complete!(&mut conn, 20_000);
    let verified = verify(&url);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        text(&verified.stdout)
    );

    #[derive(QueryableByName)]
    struct Status {
        #[diesel(sql_type = Text)]
        status: String,
    }
    let statuses: Vec<Status> =
        diesel::sql_query("SELECT status FROM manna_encryption_audit ORDER BY started_at")
            .load(&mut conn)
            .expect("audit");
    let statuses: Vec<_> = statuses.into_iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        ["running", "completed"],
        "the killed run stays `running`"
    );
}

#[test]
fn garbage_stops_the_run_naming_the_row_and_skip_invalid_records_it() {
    let db = common::PgDb::new();
    let mut conn = db.conn();
    fill!(&mut conn, 3_000);
    diesel::sql_query("UPDATE items SET secret = 'hunter2-not-encrypted' WHERE id = 1234")
        .execute(&mut conn)
        .expect("corrupt");
    let url = db.scoped_url();

    let stopped = run(&migrate_args(&url, &[]));
    assert_eq!(stopped.status.code(), Some(1));
    let stderr = text(&stopped.stderr);
    assert!(
        stderr.contains("id 1234 (input is neither a manna envelope nor a Fernet token)"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the value leaked: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // The first batch (ids 1-1000) was committed before the stop; the
    // operator is told so, and that a rerun resumes.
    assert!(
        stderr.contains("re-encrypted before the stop are committed, counted under run ")
            && stderr.contains("running the command again resumes from there"),
        "{stderr}"
    );

    let skipped = run(&migrate_args(&url, &["--skip-invalid"]));
    assert_eq!(skipped.status.code(), Some(0), "{}", text(&skipped.stderr));
    let summary = text(&skipped.stdout);
    assert_eq!(field(&summary, "undecryptable, skipped"), 1);
    assert!(!summary.contains("hunter2") && !text(&skipped.stderr).contains("hunter2"));

    #[derive(QueryableByName)]
    struct Recorded {
        #[diesel(sql_type = BigInt)]
        row_id: i64,
    }
    let recorded: Vec<Recorded> =
        diesel::sql_query("SELECT row_id FROM manna_encryption_audit_invalid_rows")
            .load(&mut conn)
            .expect("invalid rows");
    assert_eq!(
        recorded.iter().map(|r| r.row_id).collect::<Vec<_>>(),
        [1234]
    );
    // The garbage row is left as it was, and verify still reports it.
    let after = verify(&url);
    assert_eq!(after.status.code(), Some(3));
    assert_eq!(field(&text(&after.stdout), "unrecognised"), 1);
}

#[test]
fn bad_arguments_are_refused_before_anything_is_touched() {
    let db = common::SqliteDb::new();
    fill!(&mut db.conn(), 10);
    for (args, expected) in [
        (
            migrate_args("postgresx://h/db", &[]),
            "unsupported database URL scheme \"postgresx\"",
        ),
        (
            migrate_args(&db.url, &["--batch-size", "0"]),
            "batch size 0 is out of range",
        ),
        (
            vec![
                "migrate",
                "--database-url",
                &db.url,
                "--table",
                "items; DROP TABLE items",
                "--column",
                "secret",
                "--context",
                "x",
            ],
            "invalid table name",
        ),
        (
            migrate_args("/nonexistent/dir/db.sqlite", &[]),
            "no SQLite database at",
        ),
    ]
    .into_iter()
    .chain(cfg!(feature = "postgres").then(|| {
        // Nothing listens on port 1: libpq's message spans several lines.
        (
            migrate_args("postgres://postgres@127.0.0.1:1/test", &[]),
            "cannot connect to PostgreSQL",
        )
    })) {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    }
    let missing_context = run(&[
        "migrate",
        "--database-url",
        &db.url,
        "--table",
        "items",
        "--column",
        "secret",
    ]);
    assert_eq!(missing_context.status.code(), Some(2));
    assert!(text(&missing_context.stderr).contains("--context <CONTEXT>"));

    let no_key = manna(&migrate_args(&db.url, &[]))
        .env_remove("MANNA_ENCRYPTION_KEY_AES256")
        .output()
        .expect("run");
    assert_eq!(no_key.status.code(), Some(1));
    assert!(text(&no_key.stderr).contains("MANNA_ENCRYPTION_KEY_AES256"));
    // Nothing was written: the values are as they were, and no audit table exists.
    let mut conn = db.conn();
    let census = manna_diesel::migrate::census(&mut conn, "items", "secret", "id").expect("census");
    assert_eq!((census.fernet, census.v1.values().sum::<u64>()), (8, 1));
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let audit: N = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'manna_encryption_audit'",
    )
    .get_result(&mut conn)
    .expect("sqlite_master");
    assert_eq!(audit.n, 0);
}

/// `--binary`: a BLOB column of binary envelopes under the previous key.
#[test]
fn binary_columns_rotate_and_verify() {
    let db = common::SqliteDb::new();
    let mut conn = db.conn();
    diesel::sql_query("CREATE TABLE docs (id BIGINT PRIMARY KEY, scan BLOB NULL)")
        .execute(&mut conn)
        .expect("create");
    let previous = Keyring::builder(Key::from_bytes(PREVIOUS))
        .build()
        .expect("ring");
    for id in 1..=50_i64 {
        diesel::sql_query(format!("INSERT INTO docs (id, scan) VALUES ({id}, ?)"))
            .bind::<diesel::sql_types::Binary, _>(
                previous
                    .encrypt_bytes(b"\x00scan\xff", b"docs.scan")
                    .expect("encrypt"),
            )
            .execute(&mut conn)
            .expect("insert");
    }
    let target = [
        "--database-url",
        &db.url,
        "--table",
        "docs",
        "--column",
        "scan",
        "--binary",
    ];
    let verify = |expected: i32| {
        let out = run(&[&["verify"][..], &target[..]].concat());
        assert_eq!(out.status.code(), Some(expected), "{}", text(&out.stdout));
        text(&out.stdout)
    };
    assert!(verify(3).contains("(previous)"));
    let rotated = run(&[
        &["rotate"][..],
        &target[..],
        &["--context", "docs.scan"][..],
    ]
    .concat());
    assert_eq!(rotated.status.code(), Some(0), "{}", text(&rotated.stderr));
    assert_eq!(field(&text(&rotated.stdout), "re-encrypted"), 50);
    assert_eq!(field(&verify(0), "v1, key"), 50);
}
