//! `#[derive(Encrypted)]`: parse, validate, expand.

mod expand;
mod parse;
mod valid;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

pub(crate) fn derive(input: syn::DeriveInput) -> TokenStream {
    let cx = Ctxt::default();
    let model = parse::Model::from_ast(&cx, &input);
    let checked = valid::check(&cx, model);
    let mut out = match checked {
        Some(checked) => expand::expand(&checked),
        None => TokenStream::new(),
    };
    if let Some(err) = cx.into_error() {
        out.extend(err.into_compile_error());
    }
    out
}
