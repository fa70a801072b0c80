//! Key rotation through the process-wide keyring, on every backend. In its
//! own test binary (process) because it replaces the default keyring.

#![allow(missing_docs, unreachable_pub)]

mod common;

use diesel::prelude::*;
use diesel::sql_types::Text;
use manna_crypto::{classify, Format, Key, Keyring};
use manna_diesel::Encrypted;

diesel::table! {
    rotated (id) {
        id -> BigInt,
        token -> Text,
    }
}

#[derive(Encrypted, PartialEq)]
#[manna(context = "rotated.token")]
pub struct Token(pub String);

#[derive(QueryableByName)]
struct Raw {
    #[diesel(sql_type = Text)]
    token: String,
}

const OLD: [u8; 32] = [0xa1; 32];
const NEW: [u8; 32] = [0xb2; 32];

macro_rules! rotation_steps {
    ($conn:expr) => {{
        let conn = $conn;
        diesel::sql_query("CREATE TABLE rotated (id BIGINT PRIMARY KEY, token TEXT NOT NULL)")
            .execute(conn)
            .expect("create");
        // Written under the old primary key.
        manna_crypto::set_default_keyring(
            Keyring::builder(Key::from_bytes(OLD))
                .build()
                .expect("ring"),
        );
        diesel::insert_into(rotated::table)
            .values((
                rotated::id.eq(1),
                rotated::token.eq(Token("old row".into())),
            ))
            .execute(conn)
            .expect("insert old");
        // Rotate: new primary, old key moved to previous; no restart.
        manna_crypto::set_default_keyring(
            Keyring::builder(Key::from_bytes(NEW))
                .previous(Key::from_bytes(OLD))
                .build()
                .expect("ring"),
        );
        diesel::insert_into(rotated::table)
            .values((
                rotated::id.eq(2),
                rotated::token.eq(Token("new row".into())),
            ))
            .execute(conn)
            .expect("insert new");
        let tokens: Vec<Token> = rotated::table
            .order(rotated::id)
            .select(rotated::token)
            .load(conn)
            .expect("load");
        assert_eq!(tokens[0].0, "old row", "old rows still load");
        assert_eq!(tokens[1].0, "new row");
        let raw: Vec<Raw> = diesel::sql_query("SELECT token FROM rotated ORDER BY id")
            .load(conn)
            .expect("raw");
        assert_eq!(
            classify(&raw[0].token),
            Format::V1 {
                key_id: Key::from_bytes(OLD).id()
            }
        );
        assert_eq!(
            classify(&raw[1].token),
            Format::V1 {
                key_id: Key::from_bytes(NEW).id()
            },
            "new writes use the new key id"
        );
        let ring = manna_crypto::default_keyring().expect("ring");
        assert!(ring.needs_reencryption(&raw[0].token) && !ring.needs_reencryption(&raw[1].token));
    }};
}

#[test]
fn rotation_on_every_backend() {
    // One test, backends in turn: each step swaps the process-wide ring.
    let sqlite = common::SqliteDb::new();
    rotation_steps!(&mut sqlite.conn());
    let pg = common::PgDb::new();
    rotation_steps!(&mut pg.conn());
    let mysql = common::MysqlDb::new();
    rotation_steps!(&mut mysql.conn());
}
