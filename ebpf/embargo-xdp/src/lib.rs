//! Packet parsing shared by Embargo's XDP programs (production and bench references).
//!
//! One bounds-checked accessor ([`read`]) serves every packet read. Parsing stops at the fixed
//! IP header: the addresses are all the classifier needs, so extension headers and IPv4 options
//! are never walked.
#![no_std]

#[cfg(target_arch = "bpf")]
pub mod parse;
