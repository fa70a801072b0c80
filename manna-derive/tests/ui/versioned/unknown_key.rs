use manna_diesel::Versioned;

diesel::table! { items (id) { id -> BigInt, version -> Integer, } }

#[derive(Versioned)]
#[diesel(table_name = items)]
#[manna(version = version, retries = 3)]
pub struct Item {
    pub id: i64,
    pub version: i32,
}

fn main() {}
