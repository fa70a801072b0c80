use manna_diesel::Encrypted;

#[derive(Encrypted)]
#[manna(context = "users.pin")]
pub union Pin {
    a: u32,
    b: f32,
}

fn main() {}
