use manna_diesel::Versioned;

diesel::table! { items (id) { id -> BigInt, version -> Text, } }

#[derive(Versioned)]
#[diesel(table_name = items)]
pub struct Item {
    pub id: i64,
    pub version: String,
}

fn main() {}
