//! Checks the model and turns it into what `expand.rs` needs. Every problem
//! is reported, each at the span of the token at fault, with the right form.

use proc_macro2::Span;
use syn::{GenericArgument, PathArguments, Type};

use super::parse::{Model, Shape};
use crate::ctxt::Ctxt;

const RIGHT_FORM: &str = "help: the correct form looks like\n\n    #[derive(Encrypted)]\n    #[manna(context = \"plaid_items.access_token\")]\n    pub struct AccessToken(pub String);";

/// A checked model. `context` may be a placeholder when it was missing: the
/// expansion still happens then, so the user sees one error instead of a
/// cascade of missing `ToSql`/`FromSql` impls.
pub(crate) struct Checked<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) inner_ty: &'a Type,
    pub(crate) context: String,
    pub(crate) sql: Sql,
}

#[derive(Clone, Copy)]
pub(crate) enum Sql {
    Text,
    Binary,
}

pub(crate) fn check<'a>(cx: &Ctxt, model: Model<'a>) -> Option<Checked<'a>> {
    let ident = model.ident;
    let inner_ty = match model.shape {
        Shape::Newtype(ty) => Some(ty),
        Shape::NamedFields | Shape::Unit | Shape::TupleFields(_) => {
            let what = match model.shape {
                Shape::NamedFields => "a struct with named fields".to_owned(),
                Shape::Unit => "a unit struct".to_owned(),
                Shape::TupleFields(n) => format!("a tuple struct with {n} fields"),
                _ => unreachable!(),
            };
            cx.error_spanned_by(
                ident,
                format!("#[derive(Encrypted)] needs a tuple struct with exactly one field, found {what}\n\n{RIGHT_FORM}"),
            );
            None
        }
        Shape::Enum | Shape::Union => {
            let kind = if matches!(model.shape, Shape::Enum) {
                "an enum"
            } else {
                "a union"
            };
            cx.error_spanned_by(
                ident,
                format!("#[derive(Encrypted)] cannot be used on {kind}; it needs a tuple struct with one field\n\n{RIGHT_FORM}"),
            );
            None
        }
    };

    if !model.input.generics.params.is_empty() {
        cx.error_spanned_by(
            &model.input.generics,
            "#[derive(Encrypted)] does not support generic parameters; an encrypted newtype wraps `String` or `Vec<u8>`",
        );
    }

    let inner_ty = inner_ty.filter(|ty| {
        let ok = is_string(ty) || is_bytes(ty);
        if !ok {
            cx.error_spanned_by(
                ty,
                "unsupported field type for #[derive(Encrypted)]: the field must be `String` or `Vec<u8>`",
            );
        }
        ok
    });

    let context = match model.context {
        Some(lit) if lit.value().is_empty() => {
            cx.error_spanned_by(
                &lit,
                "`context` must not be empty: name the column, e.g. #[manna(context = \"plaid_items.access_token\")]",
            );
            String::new()
        }
        Some(lit) => lit.value(),
        None => {
            cx.error_at(
                Span::call_site(),
                format!(
                    "#[derive(Encrypted)] on `{ident}` needs #[manna(context = \"...\")]: the context binds each \
                     value to its column (e.g. \"table.column\")\n\n{RIGHT_FORM}"
                ),
            );
            String::new()
        }
    };

    let sql = match &model.sql_type {
        None => Sql::Text,
        Some(path) => match path.segments.last().map(|s| s.ident.to_string()).as_deref() {
            Some("Text") => Sql::Text,
            Some("Binary") => Sql::Binary,
            _ => {
                cx.error_spanned_by(
                    path,
                    "unsupported `sql_type`: expected `Text` (the default) or `Binary`, e.g. #[manna(context = \"users.ssn\", sql_type = Binary)]",
                );
                Sql::Text
            }
        },
    };

    Some(Checked {
        ident,
        inner_ty: inner_ty?,
        context,
        sql,
    })
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

fn is_string(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "String" && s.arguments.is_none())
}

fn is_bytes(ty: &Type) -> bool {
    let Some(seg) = last_segment(ty) else {
        return false;
    };
    if seg.ident != "Vec" {
        return false;
    }
    let PathArguments::AngleBracketed(args) = &seg.arguments else {
        return false;
    };
    matches!(
        args.args.iter().collect::<Vec<_>>().as_slice(),
        [GenericArgument::Type(t)] if last_segment(t).is_some_and(|s| s.ident == "u8" && s.arguments.is_none())
    )
}
