//! Drop and monitor events, the data plane's side: part of the `embargo-xdp` binary (its
//! `main.rs`), not of the library. [`sample`] is called for every dropped or monitored packet;
//! it takes one from the entity's budget on this CPU (`EMB_EVENTS_BUDGET`, which the agent
//! refills once a second) and, if there was one, sends an [`Event`] over the ring buffer, or
//! else counts it lost. No clock is read unless an event is sent. What the event says about the
//! packet beyond what the classifier read comes from [`embargo_xdp::event`].

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use embargo_abi::{Direction, EVENTS_OFF, EVENTS_RING_BYTES, Event, Verdict};
use embargo_xdp::{event::fill_packet, parse::Packet};

// The ring, and per entity its budget and lost count on each CPU (resized by the agent like
// the policy map). Names and layouts: `embargo_abi::maps`.
#[map(name = "EMB_EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);
#[map(name = "EMB_EVENTS_BUDGET")]
static EVENT_BUDGETS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
#[map(name = "EMB_EVENTS_LOST")]
static EVENTS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Sends an event for a dropped or monitored packet if the entity has budget left on this CPU
/// (see `embargo_abi::EventLimits`); one an empty budget or a full ring buffer stops is counted
/// in `EMB_EVENTS_LOST`. With events off (`EVENTS_OFF`) it does nothing else. The packet's
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
    let Some(budget) = EVENT_BUDGETS.get_ptr_mut(entity) else {
        return;
    };
    // SAFETY: a per-CPU slot, only this CPU writes it while the program runs (the agent's
    // refill may overwrite it meanwhile, which at worst gives or takes one event).
    let left = unsafe { *budget };
    if left == EVENTS_OFF {
        return;
    }
    if left == 0 {
        return lost(entity);
    }
    // SAFETY: as above.
    unsafe { *budget = left - 1 };
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

#[inline(always)]
fn lost(entity: u32) {
    if let Some(p) = EVENTS_LOST.get_ptr_mut(entity) {
        // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *p += 1 };
    }
}
