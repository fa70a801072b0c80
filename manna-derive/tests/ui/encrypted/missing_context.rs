use manna_diesel::Encrypted;

#[derive(Encrypted)]
pub struct AccessToken(pub String);

fn main() {}
