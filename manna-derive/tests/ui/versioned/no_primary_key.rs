use manna_diesel::Versioned;

diesel::table! { items (item_id) { item_id -> BigInt, version -> Integer, } }

#[derive(Versioned)]
#[diesel(table_name = items)]
pub struct Item {
    pub item_id: i64,
    pub version: i32,
}

fn main() {}
