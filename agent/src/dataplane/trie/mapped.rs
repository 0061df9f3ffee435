//! A trie map's memory, mapped into the agent for the life of the data plane.
//!
//! The trie arrays are `BPF_F_MMAPABLE`: the agent reads and writes the very memory the XDP
//! program reads, with atomic 32-bit loads and stores (the program sees each entry either
//! before or after a store, never torn). A copy of what the agent last wrote (the mirror) is
//! kept beside it: updates go to both, and attestation compares the map with the mirror to
//! find entries changed behind the agent's back (by `bpftool map update`, say) and repair them.
//! A fingerprint of the mirror is kept up to date with every store ([`Mirrored::fingerprint`]):
//! a restarted agent compares it with the pinned map's content before reusing the map.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};

use aya::maps::MapData;

use crate::dataplane::trie::live::Store;

/// A mapped trie array.
#[derive(Debug)]
pub struct Mapped {
    ptr: NonNull<u32>,
    /// Entries mapped.
    len: usize,
}

// SAFETY: the mapping is owned by this value and only accessed through atomic operations.
unsafe impl Send for Mapped {}

impl Mapped {
    /// Maps the first `len` entries of the array map `data` read-write.
    pub fn new(data: &MapData, len: usize) -> std::io::Result<Self> {
        assert!(len > 0, "an empty mapping");
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: mapping an array map fd we hold, within the map's value area (the kernel
        // refuses lengths past it); the memory stays valid until munmap in Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * size_of::<u32>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u32>()).ok_or_else(std::io::Error::last_os_error)?;
        Ok(Self { ptr, len })
    }

    fn cell(&self, index: usize) -> &AtomicU32 {
        assert!(
            index < self.len,
            "entry {index} past the mapping of {}",
            self.len
        );
        // SAFETY: in bounds (checked), 4-byte aligned (page-aligned base), valid while mapped.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(index)) }
    }

    pub fn read(&self, index: usize) -> u32 {
        self.cell(index).load(Ordering::Relaxed)
    }

    /// One atomic store. Release ordering keeps a new node's entries visible before the store
    /// that links it.
    pub fn write(&self, index: usize, value: u32) {
        self.cell(index).store(value, Ordering::Release);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len * size_of::<u32>());
        }
    }
}

/// A trie's mapped memory and its mirror: what every update writes.
#[derive(Debug)]
pub struct Mirrored {
    pub map: Mapped,
    pub mirror: Vec<u32>,
    /// XOR of [`entry_hash`] over the mirror, kept up to date by every store.
    fingerprint: u64,
}

/// One entry's share of a trie's fingerprint: 0 for an empty entry, else a 64-bit mix of its
/// index and value (splitmix64). The fingerprint is the XOR of every entry's share, so a store
/// updates it in O(1); it detects a map that is not what the agent last wrote (a partial
/// update by an agent killed mid-reload, a stale state file), not a deliberate forgery.
pub fn entry_hash(index: usize, value: u32) -> u64 {
    if value == 0 {
        return 0;
    }
    let mut z = ((index as u64) << 32 | u64::from(value)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fingerprint_of(values: &[u32]) -> u64 {
    values
        .iter()
        .enumerate()
        .fold(0, |acc, (i, v)| acc ^ entry_hash(i, *v))
}

impl Mirrored {
    /// Maps `data` and writes `entries` (the rest of the map stays zero, its fresh state).
    pub fn fill(data: &MapData, len: usize, entries: &[u32]) -> std::io::Result<Self> {
        let map = Mapped::new(data, len)?;
        let mut mirror = vec![0u32; len];
        mirror[..entries.len()].copy_from_slice(entries);
        for (i, v) in entries.iter().enumerate() {
            if *v != 0 {
                map.write(i, *v);
            }
        }
        let fingerprint = fingerprint_of(&mirror);
        Ok(Self {
            map,
            mirror,
            fingerprint,
        })
    }

    /// Maps `data` (`len` entries), filled by an earlier agent, and takes what it holds as the
    /// mirror.
    pub fn adopt(data: &MapData, len: usize) -> std::io::Result<Self> {
        let map = Mapped::new(data, len)?;
        let mirror: Vec<u32> = (0..len).map(|i| map.read(i)).collect();
        let fingerprint = fingerprint_of(&mirror);
        Ok(Self {
            map,
            mirror,
            fingerprint,
        })
    }

    /// The fingerprint of what the agent wrote (see [`entry_hash`]).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Entries where the map differs from the mirror.
    pub fn drift(&self) -> Vec<usize> {
        (0..self.mirror.len())
            .filter(|&i| self.map.read(i) != self.mirror[i])
            .collect()
    }

    /// Writes the mirror's value back to each of `entries`.
    pub fn repair(&self, entries: &[usize]) {
        for &i in entries {
            self.map.write(i, self.mirror[i]);
        }
    }
}

impl Store for Mirrored {
    fn get(&self, index: usize) -> u32 {
        self.mirror[index]
    }
    fn set(&mut self, index: usize, value: u32) {
        self.fingerprint ^= entry_hash(index, self.mirror[index]) ^ entry_hash(index, value);
        self.mirror[index] = value;
        self.map.write(index, value);
    }
    fn len(&self) -> usize {
        self.mirror.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_follows_every_store_and_tells_contents_apart() {
        let a = [0u32, 5, 0, 7];
        let mut b = a;
        b[1] = 6;
        assert_ne!(fingerprint_of(&a), fingerprint_of(&b));
        // The same value at another index differs too.
        assert_ne!(fingerprint_of(&[5, 0]), fingerprint_of(&[0, 5]));
        // An incremental update equals a recomputation.
        let inc = fingerprint_of(&a) ^ entry_hash(1, 5) ^ entry_hash(1, 6);
        assert_eq!(inc, fingerprint_of(&b));
        assert_eq!(fingerprint_of(&[0, 0, 0]), 0);
    }
}
