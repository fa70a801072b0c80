use manna_diesel::Versioned;

diesel::table! { items (id) { id -> BigInt, lock_version -> Integer, } }

#[derive(Versioned)]
#[diesel(table_name = items)]
#[manna(version = revision)]
pub struct Item {
    pub id: i64,
    pub lock_version: i32,
}

fn main() {}
