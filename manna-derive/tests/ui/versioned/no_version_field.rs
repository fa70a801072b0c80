use manna_diesel::Versioned;

diesel::table! { items (id) { id -> BigInt, name -> Text, } }

#[derive(Versioned)]
#[diesel(table_name = items)]
pub struct Item {
    pub id: i64,
    pub name: String,
}

fn main() {}
