//! Checks the model; every problem reported at once, at the token at fault.

use proc_macro2::Span;
use syn::{Ident, Path, Type};

use super::parse::{Field, Model};
use crate::ctxt::Ctxt;

const RIGHT_FORM: &str = "help: the correct form looks like\n\n    #[derive(Queryable, Identifiable, AsChangeset, Versioned)]\n    #[diesel(table_name = plaid_items)]\n    pub struct PlaidItem { pub id: i64, pub name: String, pub version: i32 }";

pub(crate) struct Checked<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) table: &'a Path,
    pub(crate) keys: Vec<&'a Field<'a>>,
    pub(crate) version: &'a Field<'a>,
}

pub(crate) fn check<'a>(cx: &Ctxt, model: &'a Model<'a>) -> Option<Checked<'a>> {
    let ident = &model.input.ident;
    let Some(fields) = &model.fields else {
        cx.error_spanned_by(
            ident,
            format!("#[derive(Versioned)] needs a struct with named fields (a Diesel model)\n\n{RIGHT_FORM}"),
        );
        return None;
    };
    if !model.input.generics.params.is_empty() {
        cx.error_spanned_by(
            &model.input.generics,
            "#[derive(Versioned)] does not support generic parameters",
        );
    }

    let table = model.table_name.as_ref();
    if table.is_none() {
        cx.error_at(
            Span::call_site(),
            format!("#[derive(Versioned)] on `{ident}` needs #[diesel(table_name = ...)] to know the table\n\n{RIGHT_FORM}"),
        );
    }

    let find = |name: &Ident| fields.iter().find(|f| f.ident == name);

    let version = match &model.version {
        Some(name) => {
            let found = find(name);
            if found.is_none() {
                cx.error_spanned_by(
                    name,
                    format!("no field `{name}` in `{ident}` for #[manna(version = {name})]"),
                );
            }
            found
        }
        None => {
            let found = fields.iter().find(|f| f.ident == "version");
            if found.is_none() {
                cx.error_at(
                    Span::call_site(),
                    format!(
                        "#[derive(Versioned)] on `{ident}` needs a version field: add `pub version: i32` \
                         (or i64), or name another field with #[manna(version = lock_version)]"
                    ),
                );
            }
            found
        }
    };
    let version = version.filter(|f| {
        let ok = is_int(f.ty);
        if !ok {
            cx.error_spanned_by(
                f.ty,
                format!("the version field `{}` must be `i32` or `i64`", f.ident),
            );
        }
        ok
    });

    let mut keys = Vec::new();
    match &model.primary_key {
        Some(names) if names.is_empty() => {
            cx.error_at(Span::call_site(), "#[diesel(primary_key())] names no field");
        }
        Some(names) => {
            for name in names {
                match find(name) {
                    Some(f) => keys.push(f),
                    None => cx.error_spanned_by(
                        name,
                        format!("primary key field `{name}` not found in `{ident}`"),
                    ),
                }
            }
        }
        None => match find(&Ident::new("id", Span::call_site())) {
            Some(f) => keys.push(f),
            None => cx.error_at(
                Span::call_site(),
                format!(
                    "#[derive(Versioned)] on `{ident}` needs a primary key: a field `id`, or \
                     #[diesel(primary_key(field_a, field_b))] naming the key fields"
                ),
            ),
        },
    }
    if let Some(v) = version {
        if keys.iter().any(|k| k.ident == v.ident) {
            cx.error_spanned_by(
                v.ident,
                "the version field cannot be part of the primary key",
            );
        }
    }

    if cx.has_errors() {
        return None;
    }
    Some(Checked {
        ident,
        table: table?,
        keys,
        version: version?,
    })
}

fn is_int(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| (s.ident == "i32" || s.ident == "i64") && s.arguments.is_none()),
        _ => false,
    }
}
