//! `#[derive(Versioned)]`: parse, validate, expand.

mod expand;
mod parse;
mod valid;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

pub(crate) fn derive(input: syn::DeriveInput) -> TokenStream {
    let cx = Ctxt::default();
    let model = parse::Model::from_ast(&cx, &input);
    let mut out = match valid::check(&cx, &model) {
        Some(checked) => expand::expand(&checked),
        None => TokenStream::new(),
    };
    if let Some(err) = cx.into_error() {
        out.extend(err.into_compile_error());
    }
    out
}
