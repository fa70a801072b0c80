use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "")]
pub struct AccessToken(pub String);

fn main() {}
