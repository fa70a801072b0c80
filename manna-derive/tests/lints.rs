//! The expansion is lint-clean: this file denies every rustc warning and
//! clippy's default and pedantic groups (CI runs clippy on tests), and
//! derives on public, documented types.

#![deny(
    warnings,
    missing_docs,
    unused_qualifications,
    unused_results,
    trivial_casts,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]

use manna_diesel::Encrypted;

/// A text column.
#[derive(Encrypted, Clone, PartialEq, Eq)]
#[manna(context = "lints.token")]
pub struct Token(pub String);

/// A binary column.
#[derive(Encrypted)]
#[manna(context = "lints.blob", sql_type = Binary)]
pub struct Blob(pub Vec<u8>);

/// A text column holding bytes, with the SQL type given as a path.
#[derive(Encrypted)]
#[manna(context = "lints.raw", sql_type = diesel::sql_types::Text)]
pub struct Raw(pub Vec<u8>);

#[test]
fn expansion_compiles_under_deny_all() {
    let token = Token::from(String::from("x"));
    assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    assert_eq!(token.as_ref(), "x");
    assert_eq!(Blob(vec![1]).into_inner(), vec![1]);
    assert_eq!(format!("{:?}", Raw(vec![])), "Raw(<redacted>)");
}
