//! The stride tries the XDP program walks (layout and lookup in [`embargo_abi::trie`]):
//! [`build`] lays a prefix set out, [`mapped`] holds a loaded trie's memory mapped into the
//! agent, and [`live`] changes a loaded trie in place, entry by entry, so a reload never opens
//! a gap.

pub mod build;
pub mod live;
pub mod mapped;
