//! Generates the `Versioned` impl.

use proc_macro2::TokenStream;
use quote::quote;

use super::valid::Checked;

pub(crate) fn expand(c: &Checked<'_>) -> TokenStream {
    let ident = c.ident;
    let table = c.table;
    let table_name = table
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    let d = quote!(::manna_diesel::__private::diesel);
    let version_field = c.version.ident;
    let version_ty = c.version.ty;
    let version_col = &c.version.column;

    // key: a.eq(self.a) [.and(b.eq(self.b)) ...], and its type.
    let mut key_ty = None::<TokenStream>;
    let mut key_expr = None::<TokenStream>;
    for k in &c.keys {
        let (col, field, ty) = (&k.column, k.ident, k.ty);
        let ty_one = quote!(#d::dsl::Eq<#table::#col, #ty>);
        let expr_one = quote!(#d::ExpressionMethods::eq(#table::#col, ::core::clone::Clone::clone(&self.#field)));
        (key_ty, key_expr) = match (key_ty, key_expr) {
            (Some(t), Some(e)) => (
                Some(quote!(#d::dsl::And<#t, #ty_one>)),
                Some(quote!(#d::BoolExpressionMethods::and(#e, #expr_one))),
            ),
            _ => (Some(ty_one), Some(expr_one)),
        };
    }
    let key_fields: Vec<_> = c.keys.iter().map(|k| k.ident).collect();
    let key_description = if key_fields.len() == 1 {
        quote!(::std::format!("{:?}", &self.#(#key_fields)*))
    } else {
        let fmt = format!("({})", vec!["{:?}"; key_fields.len()].join(", "));
        quote!(::std::format!(#fmt, #(&self.#key_fields),*))
    };

    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_attributes, unused_qualifications)]
        const _: () = {
            #[automatically_derived]
            impl ::manna_diesel::Versioned for #ident {
                type Table = #table::table;
                type VersionColumn = #table::#version_col;
                type Version = #version_ty;
                type Key = #key_ty;

                const TABLE_NAME: &'static str = #table_name;

                fn key(&self) -> Self::Key {
                    #key_expr
                }

                fn key_description(&self) -> ::std::string::String {
                    #key_description
                }

                fn version(&self) -> Self::Version {
                    self.#version_field
                }

                fn set_version(&mut self, version: Self::Version) {
                    self.#version_field = version;
                }
            }
        };
    }
}
