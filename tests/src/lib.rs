//! Helpers for Embargo's root-only integration tests and benchmarks: packet builders
//! ([`packet`]), throwaway network-namespace labs ([`lab`]), the lab policies' builder
//! ([`policy`]) and the seeded generator ([`rng`]).

pub mod lab;
pub mod packet;
pub mod policy;
pub mod prog_run;
pub mod rng;

/// Compiles configuration text (a main file with inline entities) as of today; panics on error.
pub fn compile_text(text: &str) -> embargo::policy::compile::Compiled {
    let config = embargo::config::parse(std::path::Path::new("inline.toml"), text.to_owned())
        .unwrap_or_else(|e| panic!("{e}"));
    let resolved = embargo::policy::resolve::resolve(&config).unwrap_or_else(|e| panic!("{e}"));
    embargo::policy::compile::compile(
        &embargo::config::validate::validate(&config).unwrap_or_else(|e| panic!("{e}")),
        &resolved,
        embargo::today(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}
