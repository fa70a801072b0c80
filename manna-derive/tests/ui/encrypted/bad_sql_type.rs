use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "users.age", sql_type = Integer)]
pub struct Age(pub String);

fn main() {}
