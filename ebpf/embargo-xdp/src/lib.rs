//! Packet parsing shared by Embargo's programs: the production XDP and TC egress classifiers
//! and the bench references.
//!
//! One bounds-checked accessor (`parse::read`) serves every packet read, for either context.
//! Parsing stops at the fixed IP header: the addresses are all the classifier needs, so
//! extension headers and IPv4 options are never walked. `event` reads the rest of what a drop
//! or monitor event reports (the other address, the protocol, TCP/UDP ports), only for packets
//! that send one.
#![no_std]

#[cfg(target_arch = "bpf")]
pub mod event;
#[cfg(target_arch = "bpf")]
pub mod parse;
