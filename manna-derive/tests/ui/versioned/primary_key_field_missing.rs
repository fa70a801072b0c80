use manna_diesel::Versioned;

diesel::table! { items (a, b) { a -> BigInt, b -> BigInt, version -> Integer, } }

#[derive(Versioned)]
#[diesel(table_name = items, primary_key(a, c))]
pub struct Item {
    pub a: i64,
    pub b: i64,
    pub version: i32,
}

fn main() {}
