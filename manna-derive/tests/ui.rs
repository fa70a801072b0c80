//! Compile-fail cases: every misuse of the derives, with the message the
//! user sees committed next to it (`.stderr`). Refresh with
//! `TRYBUILD=overwrite cargo test -p manna-derive --test ui` and review the
//! snapshots like documentation.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/encrypted/*.rs");
    t.compile_fail("tests/ui/versioned/*.rs");
}
