//! The command line's library side: what the `embargo` binary prints ([`output`]).

pub mod output;
