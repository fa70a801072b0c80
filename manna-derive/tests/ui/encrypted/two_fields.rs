use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "users.email")]
pub struct Email(pub String, pub String);

fn main() {}
