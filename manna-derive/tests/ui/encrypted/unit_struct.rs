use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "users.email")]
pub struct Email;

fn main() {}
