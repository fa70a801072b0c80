use manna_diesel::Encrypted;

// Encrypted writes a redacted Debug itself; a derived one would print the secret.
#[derive(Encrypted, Debug)]
#[manna(context = "users.email")]
pub struct Email(pub String);

fn main() {}
