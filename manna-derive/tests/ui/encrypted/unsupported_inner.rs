use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "users.age")]
pub struct Age(pub i32);

fn main() {}
