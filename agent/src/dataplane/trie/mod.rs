//! The compact tries the XDP and TC programs walk (layout and lookup in [`embargo_abi::trie`]):
//! [`build`] lays a prefix set out, [`mapped`] holds a loaded trie's memory mapped into the
//! agent, [`live`] changes a loaded trie in place, subtree by subtree, so a reload never opens
//! a gap and costs the change, and [`space`] keeps the free room new subtrees go to.

pub mod build;
pub mod live;
pub mod mapped;
pub mod space;
