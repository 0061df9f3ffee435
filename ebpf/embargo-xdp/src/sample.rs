//! Drop and monitor events, the data plane's side: part of the `embargo-xdp` binary (its
//! `main.rs`), not of the library. [`sample`] is called for every dropped or monitored packet;
//! it asks the entity's token bucket ([`EventLimits`]) and, if it may, sends an [`Event`] over
//! the ring buffer, or else counts it lost. What the event says about the packet beyond what
//! the classifier read comes from [`embargo_xdp::event`].

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    helpers::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use embargo_abi::{Admit, Direction, EVENTS_RING_BYTES, Event, EventLimits, Verdict};
use embargo_xdp::{event::fill_packet, parse::Packet};

// The ring, the token bucket settings, and per entity its bucket and lost count (the last two
// resized by the agent like the policy map). Names and layouts: `embargo_abi::maps`.
#[map(name = "EMB_EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);
#[map(name = "EMB_EVENTS_CFG")]
static EVENT_LIMITS: Array<EventLimits> = Array::with_max_entries(1, 0);
#[map(name = "EMB_EVENTS_BKT")]
static EVENT_BUCKETS: Array<u64> = Array::with_max_entries(1, 0);
#[map(name = "EMB_EVENTS_LOST")]
static EVENTS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
/// `embargo_abi::globals::COARSE_CLOCK`, set by the agent at load: read-only data the
/// verifier knows, so the branch not taken (and, before Linux 5.11, the helper it does not
/// have) is never checked or run.
#[unsafe(no_mangle)]
static EMB_COARSE_CLOCK: u8 = 0;

/// Sends an event for a dropped or monitored packet if the entity's token bucket allows
/// (see [`EventLimits`]); one the bucket or a full ring buffer stops is counted in
/// `EMB_EVENTS_LOST`. With events off (interval 0) it does nothing else. The packet's
/// verdict never depends on this. Called by both programs: XDP (`ifindex` the receiving
/// interface) and TC egress (`ifindex` the interface the host sends out of).
#[inline(always)]
pub fn sample(
    ctx: &impl Packet,
    ifindex: u32,
    (entity, group): (u32, u32),
    direction: Direction,
    verdict: Verdict,
    len: u64,
    (l3, v6): (usize, bool),
) {
    let Some(limits) = EVENT_LIMITS.get(0) else {
        return;
    };
    if !limits.enabled() {
        return;
    }
    let Some(bucket) = EVENT_BUCKETS.get_ptr_mut(entity) else {
        return;
    };
    let now = bucket_clock();
    // SAFETY: `bucket` points into the array map's value, valid while the program runs;
    // other CPUs may update it concurrently, which `EventLimits` allows for: a plain load,
    // and either a plain store (an idle bucket) or an atomic add.
    match limits.admit(unsafe { core::ptr::read_volatile(bucket) }, now) {
        Admit::Reject => return lost(entity),
        Admit::Reset(tat) => unsafe { core::ptr::write_volatile(bucket, tat) },
        Admit::Advance => unsafe {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(bucket, limits.interval_ns);
        },
    }
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        return lost(entity);
    };
    let mut ev = Event {
        // SAFETY: a helper without arguments.
        timestamp_ns: unsafe { bpf_ktime_get_ns() },
        ifindex,
        entity,
        group,
        packet_len: len as u32,
        direction: direction as u8,
        verdict: verdict as u8,
        ..Event::default()
    };
    fill_packet(ctx, l3, v6, &mut ev);
    entry.write(ev);
    entry.submit(0);
}

/// The token buckets' clock (CLOCK_MONOTONIC, ns): the coarse one where the kernel has it.
#[inline(always)]
fn bucket_clock() -> u64 {
    // SAFETY: reads a static; volatile so the value the agent sets at load is read.
    if unsafe { core::ptr::read_volatile(&EMB_COARSE_CLOCK) } != 0 {
        // SAFETY: helpers without arguments.
        unsafe { bpf_ktime_get_coarse_ns() }
    } else {
        // SAFETY: as above.
        unsafe { bpf_ktime_get_ns() }
    }
}

#[inline(always)]
fn lost(entity: u32) {
    if let Some(p) = EVENTS_LOST.get_ptr_mut(entity) {
        // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *p += 1 };
    }
}
