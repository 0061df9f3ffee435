//! The agent's two doors to the file system: [`read`], the bounded reader of every outside
//! file (and line numbers found in one pass), and [`write`], atomic writes, appending opens
//! and folder checks that never follow a symlink; and [`digest`], the SHA-256 of what was read.

pub mod digest;
pub mod read;
pub mod write;
