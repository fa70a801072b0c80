use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "", sql_type = Blob, cipher = "aes")]
pub struct Email(pub String);

fn main() {}
