//! The TC egress classifier on `outside` interfaces (host egress).
//!
//! On an `outside` interface with `egress` enabled, the object's TC classifier
//! ([`embargo_abi::programs::EGRESS`], same maps) is attached at egress too, and the interface's
//! role-map entry gets [`IFACE_EGRESS`]. How it is attached depends on the kernel ([`TcApi`]):
//! a TCX link on 6.6+, else a `cls_bpf` filter on a `clsact` qdisc (added if missing, removed
//! on detach only if this agent added it). A new generation takes the TC attachment over as
//! atomically as the XDP one (see [`Dataplane::take_over`]).
//!
//! A netlink `cls_bpf` filter has no pin, but it stays in the kernel after the agent dies (only
//! a clean detach removes it), and its priority and handle are in the state file for the next
//! agent to take it over ([`Dataplane::adopt`]).

use std::path::PathBuf;

use aya::{
    maps::Array,
    programs::{
        LinkOrder, ProgramError, TcAttachType, TcError,
        links::{FdLink, PinnedLink},
        tc::{NlOptions, SchedClassifierLink, TcAttachOptions},
    },
};
use embargo_abi::{IFACE_EGRESS, IfaceConfig, maps};
use serde::Serialize;

use super::{
    Dataplane, DataplaneError, array, link_error, map_error,
    pins::{keep_pinned, tc_pin_path},
    state, system,
};

/// How the TC egress classifier is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TcApi {
    /// A TCX link (Linux 6.6+): no qdisc involved; a new generation replaces the program in
    /// the link atomically (`bpf_link_update`).
    Tcx,
    /// A direct-action `cls_bpf` filter on the interface's `clsact` qdisc (older kernels): the
    /// qdisc is added if missing and removed on detach only if this agent added it; a new
    /// generation replaces the filter's program in place (same priority and handle), which
    /// the kernel does atomically.
    Netlink,
}

impl TcApi {
    /// TCX where the kernel has it (6.6+, or when the version cannot be read), else netlink.
    pub fn for_running_kernel() -> Self {
        match system::kernel_release() {
            Some(found) if system::version_less(&found, (6, 6)) => TcApi::Netlink,
            _ => TcApi::Tcx,
        }
    }
}

impl std::fmt::Display for TcApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TcApi::Tcx => "tcx",
            TcApi::Netlink => "netlink",
        })
    }
}

/// The TC egress classifier on one interface.
pub(super) struct EgressLink {
    pub(super) held: TcHeld,
    /// This agent added the interface's `clsact` qdisc (netlink only): removed on detach.
    pub(super) added_clsact: bool,
}

/// How an interface's TC egress link is held.
pub(super) enum TcHeld {
    /// Held by the agent: dropping it detaches the classifier (a TCX link without a pin
    /// folder, or a netlink filter, which [`Dataplane::leave_attached`] leaves in the kernel).
    Owned(SchedClassifierLink),
    /// A TCX link pinned under bpffs at `path`: it outlives the agent; removing the pin and
    /// closing the fd detaches it.
    Pinned { path: PathBuf, link: FdLink },
}

/// Deletes the netlink egress filters an agent left (named by its state file), and the
/// `clsact` qdiscs it added: a `cls_bpf` filter has no pin and stays in the kernel after the
/// agent. Returns each interface (with ` (TC egress)`) with the outcome.
pub fn remove_netlink_filters(
    filters: &[state::NetlinkFilter],
) -> Vec<(String, Result<(), DataplaneError>)> {
    filters
        .iter()
        .map(|f| {
            let label = format!("{} (TC egress)", f.interface);
            let r = SchedClassifierLink::attached(
                &f.interface,
                TcAttachType::Egress,
                f.priority,
                f.handle.into(),
                None,
            )
            .map_err(|e| link_error(format!("the TC egress filter on {}", f.interface), e))
            .and_then(|link| {
                // Dropping the link deletes the filter.
                drop(link);
                match (f.added_clsact, system::ifindex(&f.interface)) {
                    (true, Some(ifindex)) => {
                        system::qdisc_del_clsact(ifindex).map_err(|source| DataplaneError::Qdisc {
                            doing: format!("removing the clsact qdisc of {}", f.interface),
                            source,
                        })
                    }
                    _ => Ok(()),
                }
            });
            (label, r)
        })
        .collect()
}

impl Dataplane {
    /// Sets or clears [`IFACE_EGRESS`] in an interface's role-map entry without attaching
    /// (tests use this with BPF_PROG_TEST_RUN). The interface must have a role: its entry
    /// carries the counter slot the TC egress classifier counts in.
    pub fn set_egress(&mut self, ifindex: u32, on: bool) -> Result<(), DataplaneError> {
        let slot = self
            .slots
            .iter()
            .position(|s| *s == Some(ifindex))
            .ok_or(DataplaneError::EgressWithoutRole { ifindex })?;
        let mut roles: Array<_, IfaceConfig> = array(&mut self.ebpf, maps::IFACE_ROLES)?;
        let mut value = roles
            .get(&ifindex, 0)
            .map_err(|e| map_error("reading the interface role map", e))?;
        let flags = if on {
            self.flags[slot] | IFACE_EGRESS
        } else {
            self.flags[slot] & !IFACE_EGRESS
        };
        value.flags = flags;
        roles
            .set(ifindex, value, 0)
            .map_err(|e| map_error("writing the interface role map", e))?;
        self.flags[slot] = flags;
        Ok(())
    }

    /// Sets the interface's [`IFACE_EGRESS`] flag, then attaches the TC egress classifier at
    /// its egress through [`Dataplane::tc_api`]: a TCX link, or (netlink) a `clsact` qdisc,
    /// added if missing, and a filter on it. On failure the flag is cleared and a qdisc added
    /// here is removed again.
    pub(super) fn attach_egress(
        &mut self,
        ifindex: u32,
        name: &str,
    ) -> Result<EgressLink, DataplaneError> {
        let api = self.tc_api;
        let fail = |errno: Option<i32>, source: Box<dyn std::error::Error + Send + Sync>| {
            if errno == Some(libc::EPERM) {
                DataplaneError::Privileges {
                    doing: format!("attaching the TC egress classifier to {name}"),
                }
            } else {
                DataplaneError::AttachEgress {
                    name: name.to_owned(),
                    api,
                    source,
                }
            }
        };
        self.set_egress(ifindex, true)?;
        let added_clsact = match api {
            TcApi::Tcx => false,
            TcApi::Netlink => match aya::programs::tc::qdisc_add_clsact(name) {
                Ok(()) => true,
                Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => false,
                Err(e) => {
                    let _ = self.set_egress(ifindex, false);
                    return Err(fail(tc_errno(&e), Box::new(e)));
                }
            },
        };
        let options = match api {
            TcApi::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
            TcApi::Netlink => TcAttachOptions::Netlink(NlOptions::default()),
        };
        match self
            .egress_program_mut()
            .attach_with_options(name, TcAttachType::Egress, options)
        {
            Ok(id) => {
                if api == TcApi::Netlink {
                    // A fallback is said, not only shown as a field.
                    tracing::info!(
                        interface = %name,
                        "TCX needs Linux 6.6: the TC egress classifier is a netlink cls_bpf filter on a clsact qdisc (not pinned; the state file names it for the next agent)"
                    );
                }
                tracing::info!(
                    interface = %name,
                    api = %api,
                    clsact_added = added_clsact,
                    "TC egress classifier attached"
                );
                let held = self.hold_egress(id, name, None)?;
                Ok(EgressLink { held, added_clsact })
            }
            Err(e) => {
                if added_clsact {
                    let _ = system::qdisc_del_clsact(ifindex);
                }
                let _ = self.set_egress(ifindex, false);
                let errno = match &e {
                    ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
                    ProgramError::TcError(e) => tc_errno(e),
                    _ => None,
                };
                Err(fail(errno, Box::new(e)))
            }
        }
    }

    /// Takes TC egress link `id` from the program: a TCX link is pinned under the pin folder
    /// (or kept pinned at `pinned`); otherwise the agent owns it.
    pub(super) fn hold_egress(
        &mut self,
        id: aya::programs::tc::SchedClassifierLinkId,
        name: &str,
        pinned: Option<PathBuf>,
    ) -> Result<TcHeld, DataplaneError> {
        let link = self
            .egress_program_mut()
            .take_link(id)
            .map_err(|e| link_error(format!("taking the TC egress link of {name}"), e))?;
        let Some(dir) = self.pin_dir.clone() else {
            return Ok(TcHeld::Owned(link));
        };
        if link.priority().is_ok() {
            // A netlink filter: no link to pin; it stays in the kernel until removed.
            return Ok(TcHeld::Owned(link));
        }
        let fd = FdLink::try_from(link)
            .map_err(|e| link_error(format!("the TC egress link of {name}"), e))?;
        let (path, link) = keep_pinned(fd, pinned, tc_pin_path(&dir, name), "TC egress", name)?;
        Ok(TcHeld::Pinned { path, link })
    }

    /// Turns a held TC egress link back into a link a program can take over.
    pub(super) fn into_tc_link(
        held: TcHeld,
        name: &str,
    ) -> Result<(SchedClassifierLink, Option<PathBuf>), DataplaneError> {
        match held {
            TcHeld::Owned(link) => Ok((link, None)),
            TcHeld::Pinned { path, link } => SchedClassifierLink::try_from(link)
                .map(|l| (l, Some(path)))
                .map_err(|e| link_error(format!("the pinned TC egress link of {name}"), e)),
        }
    }

    /// Takes over the TC egress classifier a previous agent left on `iface` (a pinned TCX link,
    /// or a netlink filter the state file names) with one atomic switch; attaches it afresh if
    /// there is none.
    pub(super) fn adopt_egress(
        &mut self,
        ifindex: u32,
        name: &str,
    ) -> Result<(EgressLink, bool), DataplaneError> {
        let pin = self.pin_dir.as_deref().map(|d| tc_pin_path(d, name));
        let left = self
            .netlink_left
            .iter()
            .position(|f| f.interface == name)
            .map(|i| self.netlink_left.remove(i));
        let (link, pinned, added_clsact) = match (pin, left) {
            (Some(path), _) if path.exists() => {
                let pinned = PinnedLink::from_pin(&path).map_err(|e| {
                    link_error(format!("opening the pinned link {}", path.display()), e)
                })?;
                let link = SchedClassifierLink::try_from(FdLink::from(pinned))
                    .map_err(|e| link_error(format!("the pinned link {}", path.display()), e))?;
                (link, Some(path), false)
            }
            (_, Some(f)) if self.tc_api == TcApi::Netlink => {
                let link = SchedClassifierLink::attached(
                    name,
                    TcAttachType::Egress,
                    f.priority,
                    f.handle.into(),
                    None,
                )
                .map_err(|e| link_error(format!("the TC egress filter on {name}"), e))?;
                (link, None, f.added_clsact)
            }
            _ => return Ok((self.attach_egress(ifindex, name)?, false)),
        };
        self.set_egress(ifindex, true)?;
        let id = self
            .egress_program_mut()
            .attach_to_link(link)
            .map_err(|e| {
                link_error(format!("taking over the TC egress classifier of {name}"), e)
            })?;
        let held = self.hold_egress(id, name, pinned)?;
        Ok((EgressLink { held, added_clsact }, true))
    }

    /// Removes the TC egress classifier a previous agent left on interface `name` (its pinned
    /// TCX link, or the netlink filter the state file names), for an interface that no longer
    /// enforces egress.
    pub(super) fn drop_egress_left(&mut self, name: &str) {
        if let Some(path) = self.pin_dir.as_deref().map(|d| tc_pin_path(d, name))
            && path.exists()
        {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(interface = %name, "detached the TC egress classifier a previous agent left: egress is off")
                }
                Err(e) => {
                    tracing::warn!(interface = %name, error = %e, "could not remove the pinned TC egress link")
                }
            }
        }
        let left: Vec<_> = self
            .netlink_left
            .iter()
            .filter(|f| f.interface == name)
            .cloned()
            .collect();
        self.netlink_left.retain(|f| f.interface != name);
        for (label, r) in remove_netlink_filters(&left) {
            if let Err(e) = r {
                tracing::warn!(interface = %label, error = %e, "could not remove the netlink egress filter");
            }
        }
    }
}

/// The OS error code of a TC error, if it has one.
pub(super) fn tc_errno(e: &TcError) -> Option<i32> {
    match e {
        TcError::NetlinkError(e) => e.raw_os_error(),
        TcError::IoError(e) => e.raw_os_error(),
        _ => None,
    }
}
