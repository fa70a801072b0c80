//! The `#[manna(...)]` helper attribute, shared by the derives.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Ident};

use crate::ctxt::Ctxt;

/// The attribute's name.
pub(crate) const MANNA: &str = "manna";

/// Keys of `#[manna(...)]`, one constant each.
pub(crate) const CONTEXT: &str = "context";
pub(crate) const SQL_TYPE: &str = "sql_type";
pub(crate) const VERSION: &str = "version";

/// One optional key: remembers the first value and flags a repeat at the
/// repeated key's span.
pub(crate) struct Attr<'c, T> {
    cx: &'c Ctxt,
    name: &'static str,
    value: Option<(Span, T)>,
}

impl<'c, T> Attr<'c, T> {
    pub(crate) fn none(cx: &'c Ctxt, name: &'static str) -> Self {
        Self {
            cx,
            name,
            value: None,
        }
    }

    pub(crate) fn set(&mut self, key: &Ident, value: T) {
        if self.value.is_some() {
            self.cx.error_spanned_by(
                key,
                format!("duplicate `{}` in #[manna(...)]; give it once", self.name),
            );
        } else {
            self.value = Some((key.span(), value));
        }
    }

    pub(crate) fn get(self) -> Option<(Span, T)> {
        self.value
    }
}

/// Calls `on_key` for every `key = value` inside every `#[manna(...)]`.
/// `on_key` returns `Ok(false)` for a key it does not know; that key is then
/// reported at its span, with `expected` listing the valid keys, and parsing
/// goes on so that every error is reported.
pub(crate) fn parse_manna_attrs(
    cx: &Ctxt,
    attrs: &[Attribute],
    expected: &str,
    mut on_key: impl FnMut(&Ident, &ParseNestedMeta<'_>) -> syn::Result<bool>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident(MANNA)) {
        let result = attr.parse_nested_meta(|meta| {
            let Some(key) = meta.path.get_ident().cloned() else {
                cx.error_spanned_by(&meta.path, format!("expected one of {expected}"));
                return skip_value(&meta);
            };
            if !on_key(&key, &meta)? {
                cx.error_spanned_by(
                    &key,
                    format!("unknown key `{key}` in #[manna(...)]; expected one of {expected}"),
                );
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(err) = result {
            cx.syn_error(err);
        }
    }
}

fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}
