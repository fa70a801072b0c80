use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "users.email")]
#[manna(context = "users.email_address")]
pub struct Email(pub String);

fn main() {}
