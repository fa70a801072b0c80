use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "users.email")]
pub struct Email<T>(pub String, std::marker::PhantomData<T>);

fn main() {}
