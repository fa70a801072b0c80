use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "users.email", algorithm = "aes")]
pub struct Email(pub String);

fn main() {}
