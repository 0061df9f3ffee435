//! The stride tries the XDP program walks (layout and lookup in [`embargo_abi::trie`]):
//! [`build`] lays a prefix set out, [`mapped`] holds a loaded trie's memory mapped into the
//! agent, and [`live`] changes a loaded trie in place, entry by entry, so a reload never opens
//! a gap. [`poptrie`] builds the compact trie of issue 13, the next data plane (not yet
//! loaded).

pub mod build;
pub mod live;
pub mod mapped;
pub mod poptrie;
