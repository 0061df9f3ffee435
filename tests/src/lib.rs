//! Helpers for Embargo's root-only integration tests and benchmarks: packet builders
//! ([`packet`]) and throwaway network-namespace labs ([`lab`]).

pub mod lab;
pub mod packet;
