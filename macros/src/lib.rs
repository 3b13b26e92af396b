//! The attribute macros of [proclife](https://docs.rs/proclife); use them through the
//! `proclife` crate (`#[proclife::test]`), not directly.

use proc_macro::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, parse_macro_input};

/// Runs a test's body on the main thread of a fresh, single-threaded process, so that it may
/// start processes under every start method, including `fork` with closure targets.
///
/// See `proclife::test` for the behaviour; this crate only rewrites the function.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let input = parse_macro_input!(item as ItemFn);
    if !args.is_empty() {
        return error(args.span(), "#[proclife::test] takes no arguments");
    }
    let sig = &input.sig;
    if let Some(token) = sig.asyncness {
        return error(
            token.span(),
            "#[proclife::test] does not run async functions: start a runtime inside the test",
        );
    }
    if !sig.inputs.is_empty() {
        return error(sig.inputs.span(), "a test function takes no arguments");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return error(sig.generics.span(), "a test function cannot be generic");
    }
    if sig.constness.is_some() || sig.abi.is_some() || !matches!(sig.safety, syn::Safety::Default) {
        return error(
            sig.fn_token.span(),
            "#[proclife::test] expects a plain `fn name() { .. }` or `fn name() -> Result<(), E> { .. }`",
        );
    }
    if input.attrs.iter().any(|a| a.path().is_ident("test")) {
        return error(
            sig.ident.span(),
            "#[proclife::test] already makes the function a test: remove #[test]",
        );
    }
    let attrs = &input.attrs;
    let vis = &input.vis;
    let name = &sig.ident;
    let output = &sig.output;
    let body = &input.block;
    let ret = match output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    };
    quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() {
            fn __proclife_test_body(
                __proclife_sink: ::proclife::testing::Sink,
            ) -> ::proclife::TargetResult {
                fn __proclife_test_inner() -> #ret #body
                __proclife_sink.run(__proclife_test_inner)
            }
            ::proclife::entry!(__proclife_test_body);
            ::proclife::testing::run_test(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                __proclife_test_body,
            )
        }
    }
    .into()
}

fn error(span: proc_macro2::Span, message: &str) -> TokenStream {
    quote_spanned!(span=> ::core::compile_error!(#message);).into()
}
