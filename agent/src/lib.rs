//! Embargo: a sanctions-aware egress firewall agent.
//!
//! The library behind the `embargo` binary: the configuration ([`config`]), the policy compiler
//! ([`policy`]), the stride tries the data plane loads ([`table`]), the XDP loader
//! ([`dataplane`]), the agent loop ([`run`]) and its status ([`status`]).

pub mod config;
pub mod dataplane;
pub mod policy;
pub mod run;
pub mod status;
pub mod system;
pub mod table;
