//! Reads the model: its fields, `#[diesel(table_name, primary_key)]`,
//! per-field `#[diesel(column_name)]`, and `#[manna(version = ...)]`.

use syn::{Data, DeriveInput, Fields, Ident, Path, Type};

use crate::attr::{self, parse_manna_attrs, Attr};
use crate::ctxt::Ctxt;

pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    /// `#[diesel(column_name = ...)]`, or the field's name.
    pub(crate) column: Ident,
}

pub(crate) struct Model<'a> {
    pub(crate) input: &'a DeriveInput,
    /// `None` when the item is not a struct with named fields.
    pub(crate) fields: Option<Vec<Field<'a>>>,
    pub(crate) table_name: Option<Path>,
    pub(crate) primary_key: Option<Vec<Ident>>,
    pub(crate) version: Option<Ident>,
}

impl<'a> Model<'a> {
    pub(crate) fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        let fields = match &input.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(named) => Some(
                    named
                        .named
                        .iter()
                        .filter_map(|f| {
                            let ident = f.ident.as_ref()?;
                            Some(Field {
                                ident,
                                ty: &f.ty,
                                column: column_name(f).unwrap_or_else(|| ident.clone()),
                            })
                        })
                        .collect(),
                ),
                _ => None,
            },
            _ => None,
        };

        let mut table_name = None;
        let mut primary_key = None;
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("diesel")) {
            // Only the keys this derive needs; Diesel's derives check the rest.
            let _ = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("table_name") {
                    table_name = Some(meta.value()?.parse::<Path>()?);
                } else if meta.path.is_ident("primary_key") {
                    let mut keys = Vec::new();
                    meta.parse_nested_meta(|k| {
                        keys.push(k.path.require_ident()?.clone());
                        Ok(())
                    })?;
                    primary_key = Some(keys);
                } else if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<proc_macro2::TokenStream>()?;
                } else if meta.input.peek(syn::token::Paren) {
                    let _content;
                    syn::parenthesized!(_content in meta.input);
                }
                Ok(())
            });
        }

        let mut version = Attr::none(cx, attr::VERSION);
        parse_manna_attrs(cx, &input.attrs, "`version`", |key, meta| {
            if key == attr::VERSION {
                version.set(key, meta.value()?.parse::<Ident>()?);
                Ok(true)
            } else {
                Ok(false)
            }
        });

        Model {
            input,
            fields,
            table_name,
            primary_key,
            version: version.get().map(|(_, v)| v),
        }
    }
}

fn column_name(field: &syn::Field) -> Option<Ident> {
    let mut column = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("diesel")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("column_name") {
                column = Some(meta.value()?.parse::<Ident>()?);
            } else if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<proc_macro2::TokenStream>()?;
            }
            Ok(())
        });
    }
    column
}
