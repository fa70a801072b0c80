use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "users.email")]
pub enum Email {
    Work(String),
    Home(String),
}

fn main() {}
