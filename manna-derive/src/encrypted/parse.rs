//! Reads the derive input and `#[manna(...)]` into a small model. No checks
//! beyond what parsing needs; those are in `valid.rs`.

use syn::{Data, DeriveInput, Fields, Ident, LitStr, Path, Type};

use crate::attr::{self, parse_manna_attrs, Attr};
use crate::ctxt::Ctxt;

pub(crate) struct Model<'a> {
    pub(crate) input: &'a DeriveInput,
    pub(crate) ident: &'a Ident,
    /// The one field's type, if the item is a struct with exactly one unnamed field.
    pub(crate) shape: Shape<'a>,
    pub(crate) context: Option<LitStr>,
    pub(crate) sql_type: Option<Path>,
}

pub(crate) enum Shape<'a> {
    Newtype(&'a Type),
    NamedFields,
    TupleFields(usize),
    Unit,
    Enum,
    Union,
}

impl<'a> Model<'a> {
    pub(crate) fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        let shape = match &input.data {
            Data::Struct(s) => match &s.fields {
                Fields::Unnamed(f) if f.unnamed.len() == 1 => Shape::Newtype(&f.unnamed[0].ty),
                Fields::Unnamed(f) => Shape::TupleFields(f.unnamed.len()),
                Fields::Named(_) => Shape::NamedFields,
                Fields::Unit => Shape::Unit,
            },
            Data::Enum(_) => Shape::Enum,
            Data::Union(_) => Shape::Union,
        };
        let mut context = Attr::none(cx, attr::CONTEXT);
        let mut sql_type = Attr::none(cx, attr::SQL_TYPE);
        parse_manna_attrs(cx, &input.attrs, "`context`, `sql_type`", |key, meta| {
            if key == attr::CONTEXT {
                context.set(key, meta.value()?.parse::<LitStr>()?);
            } else if key == attr::SQL_TYPE {
                sql_type.set(key, meta.value()?.parse::<Path>()?);
            } else {
                return Ok(false);
            }
            Ok(true)
        });
        Model {
            input,
            ident: &input.ident,
            shape,
            context: context.get().map(|(_, v)| v),
            sql_type: sql_type.get().map(|(_, v)| v),
        }
    }
}
