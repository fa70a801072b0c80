//! `cargo run --example quickstart`: encrypted Diesel columns in a minute.
//!
//! Uses an SQLite database in a temporary directory, or `DATABASE_URL` when
//! it is set (PostgreSQL or MySQL; build with
//! `--features manna-diesel/postgres` or `--features manna-diesel/mysql`).
//! Takes the key from `MANNA_ENCRYPTION_KEY_AES256`, or generates a
//! throw-away one.

#![allow(clippy::print_stdout)]

use std::error::Error;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use manna_crypto::Keyring;
use manna_diesel::migrate::{census, Reencryption};
use manna_diesel::{retry_on_conflict, Encrypted, RetryPolicy, Versioned};

/// The project's migrations, compiled in.
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// A Fernet key of the old Python backend (a demo key, public).
const LEGACY_KEY: &str = "3cb0RWNi8akdvi_pRxsvqs7Bxx0SLdU9OrxUKzHlS7s=";
/// What the Python backend stored for "access-legacy-python-4c1d":
/// `Fernet(LEGACY_KEY).encrypt(b"access-legacy-python-4c1d")`.
const LEGACY_TOKEN: &str = "gAAAAABrEa0CgR9LbyeeTvQy4pop_muSH4DpnO4vBlD6CpNlZr1bqnLFLlL2VUvb5aLkqQxLDORrClzM7rAQqV21sNweBxUNDJity7ahbXIxUkoVnaMmHMg=";

mod schema {
    diesel::table! {
        plaid_items (id) {
            id -> BigInt,
            name -> Text,
            access_token -> Text,
            notes -> Nullable<Text>,
            version -> Integer,
        }
    }
}
use schema::plaid_items;

/// A bank access token: stored encrypted, bound to its column.
#[derive(Encrypted, Clone, PartialEq)]
#[manna(context = "plaid_items.access_token")]
pub struct AccessToken(pub String);

/// Free-text notes, encrypted too; NULL stays NULL.
#[derive(Encrypted, Clone, PartialEq)]
#[manna(context = "plaid_items.notes")]
pub struct Notes(pub String);

/// One row of `plaid_items`: encrypted fields, and a version for optimistic locking.
#[derive(Queryable, Selectable, Insertable, Identifiable, AsChangeset, Versioned, Clone, Debug)]
#[diesel(table_name = plaid_items)]
pub struct PlaidItem {
    /// Primary key.
    pub id: i64,
    /// Not secret.
    pub name: String,
    /// Secret.
    pub access_token: AccessToken,
    /// Secret, optional.
    pub notes: Option<Notes>,
    /// Row version (optimistic locking).
    pub version: i32,
}

/// What the database holds, read without decryption.
#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    access_token: String,
    #[diesel(sql_type = Nullable<Text>)]
    notes: Option<String>,
}

fn main() -> Result<(), Box<dyn Error>> {
    install_keyring()?;
    match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        None => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("quickstart.db");
            println!(
                "database: SQLite at {} (set DATABASE_URL for PostgreSQL or MySQL)",
                path.display()
            );
            let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
            demo!(&mut conn);
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            #[cfg(feature = "postgres")]
            {
                println!("database: PostgreSQL from DATABASE_URL");
                let mut conn = PgConnection::establish(&url)?;
                demo!(&mut conn);
            }
            #[cfg(not(feature = "postgres"))]
            return Err(format!(
                "DATABASE_URL is PostgreSQL ({}); run with --features manna-diesel/postgres",
                redact(&url)
            )
            .into());
        }
        Some(url) if url.starts_with("mysql://") => {
            #[cfg(feature = "mysql")]
            {
                println!("database: MySQL from DATABASE_URL");
                let mut conn = MysqlConnection::establish(&url)?;
                demo!(&mut conn);
            }
            #[cfg(not(feature = "mysql"))]
            return Err(format!(
                "DATABASE_URL is MySQL ({}); run with --features manna-diesel/mysql",
                redact(&url)
            )
            .into());
        }
        Some(url) => {
            return Err(format!(
                "DATABASE_URL {} is not postgres:// or mysql://",
                redact(&url)
            )
            .into())
        }
    }
    Ok(())
}

/// The primary key from the environment, or a throw-away one, plus the
/// demo legacy Fernet key (and any from MANNA_ENCRYPTION_KEY).
fn install_keyring() -> Result<(), Box<dyn Error>> {
    let from_env = std::env::var(manna_crypto::ENV_PRIMARY)
        .ok()
        .filter(|k| !k.trim().is_empty());
    let throwaway = match from_env {
        Some(_) => None,
        None => Some(manna_crypto::generate_aes256_key()?),
    };
    let ring = Keyring::from_env_with(|name| match name {
        manna_crypto::ENV_PRIMARY => throwaway.clone().or_else(|| std::env::var(name).ok()),
        manna_crypto::ENV_LEGACY => Some(match std::env::var(name) {
            Ok(keys) if !keys.trim().is_empty() => format!("{keys},{LEGACY_KEY}"),
            _ => LEGACY_KEY.to_owned(),
        }),
        _ => std::env::var(name).ok(),
    })?;
    let id = ring.primary_key_id();
    if throwaway.is_some() {
        println!("key:      none in MANNA_ENCRYPTION_KEY_AES256, so a throw-away key (id {id}) was generated;");
        println!("          make a real one with `cargo run -p manna-cli -- keygen`");
    } else {
        println!("key:      MANNA_ENCRYPTION_KEY_AES256 (id {id})");
    }
    manna_crypto::set_default_keyring(ring);
    Ok(())
}

/// The same steps on whichever connection type.
macro_rules! demo {
    ($conn:expr) => {{
        let conn = $conn;
        conn.run_pending_migrations(MIGRATIONS).map_err(|e| format!("migrations: {e}"))?;
        // Start from a clean table when DATABASE_URL points at a database used before.
        diesel::delete(plaid_items::table.filter(plaid_items::id.le(3))).execute(conn)?;

        let items = [
            PlaidItem {
                id: 1,
                name: "Checking".into(),
                access_token: AccessToken("access-sandbox-8f2e".into()),
                notes: Some(Notes("joint account with Sam".into())),
                version: 1,
            },
            PlaidItem {
                id: 2,
                name: "Savings".into(),
                access_token: AccessToken("access-sandbox-77aa".into()),
                notes: None,
                version: 1,
            },
        ];
        diesel::insert_into(plaid_items::table).values(&items).execute(conn)?;
        // A row the old Python backend wrote, holding a Fernet token.
        diesel::sql_query(format!(
            "INSERT INTO plaid_items (id, name, access_token, version) VALUES (3, 'Legacy', '{LEGACY_TOKEN}', 1)"
        ))
        .execute(conn)?;

        let stored: Vec<Stored> =
            diesel::sql_query("SELECT id, access_token, notes FROM plaid_items WHERE id <= 3 ORDER BY id").load(conn)?;
        let read: Vec<PlaidItem> = plaid_items::table
            .filter(plaid_items::id.le(3))
            .order(plaid_items::id)
            .select(PlaidItem::as_select())
            .load(conn)?;

        println!();
        println!("{:<3} {:<13} {:<38} {}", "id", "column", "stored in the database", "read by the application");
        for (s, r) in stored.iter().zip(&read) {
            println!("{:<3} {:<13} {:<38} {}", s.id, "access_token", short(&s.access_token), r.access_token.0);
            let note = r.notes.as_ref().map_or("NULL", |n| n.0.as_str());
            println!("{:<3} {:<13} {:<38} {}", "", "notes", s.notes.as_deref().map_or("NULL".into(), short), note);
        }
        println!();
        println!("Rows 1 and 2 were written through Diesel as AES-256-GCM envelopes (manna:v1:...).");
        println!("Row 3 holds a Fernet token the old Python backend wrote; it still reads.");
        println!("Debug never shows a secret: {:?}", read[0].access_token);

        // Optimistic locking: two handles load row 1 and both try to write it.
        println!();
        let load = |conn: &mut _| {
            plaid_items::table.find(1).select(PlaidItem::as_select()).first::<PlaidItem>(conn)
        };
        let mut handle_a = load(conn)?;
        let mut handle_b = load(conn)?;
        handle_a.update_with_lock(conn, plaid_items::access_token.eq(AccessToken("access-rotated-91c0".into())))?;
        println!("handle A: rotated the access token      -> ok, version {} -> {}", 1, handle_a.version);
        match handle_b.update_with_lock(conn, plaid_items::notes.eq(Some(Notes("closed".into())))) {
            Ok(()) => println!("handle B: unexpectedly succeeded"),
            Err(e) => println!("handle B: set notes from a stale copy     -> {e}"),
        }
        retry_on_conflict(&RetryPolicy::default(), conn, |conn| {
            let mut fresh = load(conn)?;
            fresh.update_with_lock(conn, plaid_items::notes.eq(Some(Notes("closed".into()))))
        })?;
        let written = load(conn)?;
        println!(
            "handle B: retry_on_conflict (reload, reapply) -> ok, version {}; the row keeps both: {} / {}",
            written.version,
            written.access_token.0,
            written.notes.as_ref().map_or("NULL", |n| n.0.as_str()),
        );

        // The Fernet -> AES-256-GCM upgrade (what `manna migrate` runs), while
        // the application keeps writing: batches, compare-and-swap, audited.
        println!();
        let ring = manna_crypto::default_keyring()?;
        let report = Reencryption::new("plaid_items", "access_token", "plaid_items.access_token")
            .run(conn, &ring)?;
        let row3: Stored =
            diesel::sql_query("SELECT id, access_token, notes FROM plaid_items WHERE id = 3").get_result(conn)?;
        println!(
            "upgrade:  {} Fernet token(s) re-encrypted, {} value(s) already current; row 3 now holds {}",
            report.converted,
            report.skipped,
            short(&row3.access_token)
        );
        let counts = census(conn, "plaid_items", "access_token", "id")?;
        println!(
            "verify:   {} -> the legacy Fernet key can be retired for this column",
            if counts.is_complete(&ring) { "every value is v1 under the primary key" } else { "values remain" }
        );
    }};
}
use demo;

/// The first 30 characters of a stored value and its length.
fn short(value: &str) -> String {
    if value.len() <= 30 {
        return value.to_owned();
    }
    format!("{}… ({} chars)", &value[..24], value.len())
}

/// A database URL without its password.
#[allow(dead_code)]
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}
