//! From configuration to the policy the kernel enforces.
//!
//! [`resolve`] reads every input a configuration names (indicator files, range tables, source
//! copies) into candidate prefixes; [`compile`] turns the configuration and what was resolved
//! into the compiled policy and its report (pure: no I/O, no clock); [`maps`] lays the compiled
//! policy out as the data plane loads it. [`explain`] (`embargo why`) and [`plan`]
//! (`embargo plan`) answer from the same compiled policy, and [`export`] writes it for other
//! firewalls; [`cidr`] is their prefix arithmetic.

pub mod cidr;
pub mod compile;
pub mod explain;
pub mod export;
pub mod maps;
pub mod plan;
pub mod resolve;
pub mod special;

pub use maps::{EntityIndex, EntityInfo, GroupInfo, Policy};
