use manna_diesel::Versioned;

#[derive(Versioned)]
pub struct Item(i64, i32);

fn main() {}
