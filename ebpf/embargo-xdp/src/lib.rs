//! Packet parsing shared by Embargo's programs: the production XDP and TC egress classifiers
//! and the bench references.
//!
//! One bounds-checked accessor (`parse::read`) serves every packet read, for either context.
//! Parsing stops at the fixed IP header: the addresses are all the classifier needs, so
//! extension headers and IPv4 options are never walked.
#![no_std]

#[cfg(target_arch = "bpf")]
pub mod parse;
