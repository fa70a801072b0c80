//! Generates the impls. No checks here: `valid.rs` did them.

use proc_macro2::TokenStream;
use quote::quote;

use super::valid::{Checked, Sql};

pub(crate) fn expand(c: &Checked<'_>) -> TokenStream {
    let ident = c.ident;
    let inner = c.inner_ty;
    let context = &c.context;
    let name = ident.to_string();
    let p = quote!(::manna_diesel::__private);
    let d = quote!(::manna_diesel::__private::diesel);
    let (sql_type, to_sql, from_sql, stored_ty) = match c.sql {
        Sql::Text => (
            quote!(#d::sql_types::Text),
            quote!(#p::to_sql_text),
            quote!(#p::from_sql_text),
            quote!(::std::string::String),
        ),
        Sql::Binary => (
            quote!(#d::sql_types::Binary),
            quote!(#p::to_sql_binary),
            quote!(#p::from_sql_binary),
            quote!(::std::vec::Vec<u8>),
        ),
    };
    let bound = quote!(#d::internal::derives::as_expression::Bound);
    let nullable = quote!(#d::sql_types::Nullable<#sql_type>);
    let as_expr = |st: &TokenStream, lifetimes: TokenStream, ty: TokenStream| {
        quote! {
            #[automatically_derived]
            impl<#lifetimes> #d::expression::AsExpression<#st> for #ty {
                type Expression = #bound<#st, Self>;
                fn as_expression(self) -> Self::Expression {
                    #bound::new(self)
                }
            }
        }
    };
    let as_expression = [&sql_type, &nullable].into_iter().map(|st| {
        let owned = as_expr(st, quote!(), quote!(#ident));
        let by_ref = as_expr(st, quote!('__expr), quote!(&'__expr #ident));
        let by_ref2 = as_expr(
            st,
            quote!('__expr, '__expr2),
            quote!(&'__expr2 &'__expr #ident),
        );
        quote!(#owned #by_ref #by_ref2)
    });
    let into_inner_doc = format!("Returns the plaintext, consuming the `{name}`.");

    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_attributes, unused_qualifications)]
        const _: () = {
            #[automatically_derived]
            impl #p::EncryptedColumn for #ident {
                const TYPE_NAME: &'static str = #name;
                const CONTEXT: &'static str = #context;
            }

            #[automatically_derived]
            impl ::core::fmt::Debug for #ident {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.write_str(::core::concat!(#name, "(<redacted>)"))
                }
            }

            #[automatically_derived]
            impl ::core::convert::From<#inner> for #ident {
                fn from(plaintext: #inner) -> Self {
                    Self(plaintext)
                }
            }

            #[automatically_derived]
            impl ::core::convert::AsRef<#inner> for #ident {
                fn as_ref(&self) -> &#inner {
                    &self.0
                }
            }

            #[automatically_derived]
            impl #ident {
                #[doc = #into_inner_doc]
                #[allow(dead_code)]
                pub fn into_inner(self) -> #inner {
                    self.0
                }
            }

            #[automatically_derived]
            impl<__DB> #d::serialize::ToSql<#sql_type, __DB> for #ident
            where
                __DB: #p::EncryptedBackend,
            {
                fn to_sql<'__b>(
                    &'__b self,
                    out: &mut #d::serialize::Output<'__b, '_, __DB>,
                ) -> #d::serialize::Result {
                    #to_sql::<Self, __DB>(&self.0, out)
                }
            }

            #[automatically_derived]
            impl<__DB> #d::serialize::ToSql<#nullable, __DB> for #ident
            where
                __DB: #p::EncryptedBackend,
            {
                fn to_sql<'__b>(
                    &'__b self,
                    out: &mut #d::serialize::Output<'__b, '_, __DB>,
                ) -> #d::serialize::Result {
                    #d::serialize::ToSql::<#sql_type, __DB>::to_sql(self, out)
                }
            }

            #[automatically_derived]
            impl<__DB> #d::deserialize::FromSql<#sql_type, __DB> for #ident
            where
                __DB: #d::backend::Backend,
                #stored_ty: #d::deserialize::FromSql<#sql_type, __DB>,
            {
                fn from_sql(bytes: <__DB as #d::backend::Backend>::RawValue<'_>) -> #d::deserialize::Result<Self> {
                    let stored = <#stored_ty as #d::deserialize::FromSql<#sql_type, __DB>>::from_sql(bytes)?;
                    #from_sql::<Self, #inner>(&stored).map(Self)
                }
            }

            #[automatically_derived]
            impl<__DB, __ST> #d::deserialize::Queryable<__ST, __DB> for #ident
            where
                __DB: #d::backend::Backend,
                __ST: #d::sql_types::SingleValue,
                Self: #d::deserialize::FromSql<__ST, __DB>,
            {
                type Row = Self;
                fn build(row: Self) -> #d::deserialize::Result<Self> {
                    ::core::result::Result::Ok(row)
                }
            }

            #(#as_expression)*
        };
    }
}
