use manna_diesel::Versioned;

#[derive(Versioned)]
pub struct Item {
    pub id: i64,
    pub version: i32,
}

fn main() {}
