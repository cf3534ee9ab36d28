//! `#[derive(rvm::Pod)]` and `#[derive(rvm::Zeroable)]`: bytemuck's derives, usable without a
//! bytemuck dependency in the user's `Cargo.toml`.
//!
//! Each derive checks the struct the way bytemuck's derive does, by handing bytemuck's derive
//! (reached through `::rvm::__private::bytemuck`) a copy of the struct with the same `repr`
//! and the same field types; the copy has the same layout, so when it passes (no padding,
//! every field `Pod`, a C-compatible `repr`) the original is `Pod` too, and the derive
//! implements the trait for it. Use them from `rvm`: `#[derive(Clone, Copy, rvm::Pod,
//! rvm::Zeroable)]` with `#[repr(C)]`.

#![deny(missing_docs)]

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{parse_macro_input, Data, DeriveInput};

/// Implement `rvm::Pod` (bytemuck's `Pod`) for a struct, after bytemuck's checks.
#[proc_macro_derive(Pod)]
pub fn derive_pod(input: TokenStream) -> TokenStream {
    derive(input, "Pod")
}

/// Implement `rvm::Zeroable` (bytemuck's `Zeroable`) for a struct, after bytemuck's checks.
#[proc_macro_derive(Zeroable)]
pub fn derive_zeroable(input: TokenStream) -> TokenStream {
    derive(input, "Zeroable")
}

fn derive(input: TokenStream, which: &str) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input, which) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput, which: &str) -> syn::Result<proc_macro2::TokenStream> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            format!("rvm::{which} cannot be derived for a generic type; implement it by hand"),
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            format!("rvm::{which} can be derived for structs only"),
        ));
    };
    let reprs = input.attrs.iter().filter(|a| a.path().is_ident("repr"));
    let check = format_ident!("__RvmCheck{which}{name}");
    let mut fields = data.fields.clone();
    for f in fields.iter_mut() {
        f.attrs.clear();
        f.vis = syn::Visibility::Inherited;
    }
    let semicolon = match fields {
        syn::Fields::Named(_) => quote! {},
        _ => quote! { ; },
    };
    let trait_ident = format_ident!("{which}");
    let derives = if which == "Pod" {
        quote! { ::core::clone::Clone, ::core::marker::Copy, ::rvm::__private::bytemuck::Pod, ::rvm::__private::bytemuck::Zeroable }
    } else {
        quote! { ::rvm::__private::bytemuck::Zeroable }
    };
    Ok(quote! {
        const _: () = {
            #[allow(dead_code, non_camel_case_types)]
            #[derive(#derives)]
            #[bytemuck(crate = "::rvm::__private::bytemuck")]
            #(#reprs)*
            struct #check #fields #semicolon
            assert!(
                ::core::mem::size_of::<#check>() == ::core::mem::size_of::<#name>()
                    && ::core::mem::align_of::<#check>() == ::core::mem::align_of::<#name>()
            );
        };
        // SAFETY: a struct with the same repr and the same field types passed bytemuck's
        // derive of this trait (above), so this struct has the same layout and meets the
        // trait's requirements too.
        unsafe impl ::rvm::__private::bytemuck::#trait_ident for #name {}
    })
}
