//! Derive macros for `manna-diesel`. Depend on `manna-diesel`, which
//! re-exports them and documents them; this crate is its implementation detail.
//!
//! Each derive parses its input into a small model, validates it (collecting
//! every error, each at the span of the token at fault), and expands to code
//! that calls into `::manna_diesel::__private`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod attr;
mod ctxt;
mod encrypted;
mod versioned;

use proc_macro::TokenStream;
use syn::parse_macro_input;

/// Implements Diesel's `ToSql`/`FromSql` for an encrypted newtype. See
/// `manna_diesel::Encrypted` for the documentation.
#[proc_macro_derive(Encrypted, attributes(manna))]
pub fn derive_encrypted(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as syn::DeriveInput);
    encrypted::derive(input).into()
}

/// Implements `manna_diesel::Versioned` (optimistic locking) for a Diesel
/// model. See `manna_diesel::Versioned` for the documentation.
#[proc_macro_derive(Versioned, attributes(manna, diesel))]
pub fn derive_versioned(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as syn::DeriveInput);
    versioned::derive(input).into()
}
