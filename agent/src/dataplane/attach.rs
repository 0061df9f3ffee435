//! Attaching the XDP program to interfaces, and detaching it.
//!
//! Attaching writes the interface's role-map entry first (role, counter slot, link type), then
//! attaches: in `auto` mode native first, falling back to generic with a log line. All or
//! nothing: with `egress`, if the TC egress classifier cannot be attached, the XDP attachment is
//! undone.
//!
//! Uplinks: what a packet on an interface starts with is read from the interface's hardware
//! type at attach ([`system::arphrd`], [`Link::from_arphrd`]) and written into its role-map
//! entry, where both programs read it: Ethernet (VLAN, bond, bridge, veth, tap: possibly
//! tagged, possibly PPPoE), or raw IP on layer-3 devices (tun, WireGuard, PPP, IPIP/SIT/GRE
//! tunnels). Those get generic XDP in `auto` mode (no driver of theirs runs XDP natively on
//! received traffic), and so do bonds (a native program runs on the slaves, under their
//! ifindex). A hardware type the parser cannot read is refused at attach.
//!
//! A new generation takes every attachment over atomically per interface
//! ([`Dataplane::take_over`]): the role is written first, then the link is pointed at the new
//! program (`bpf_link_update`); the interface is never without a program.

use std::path::PathBuf;

use aya::programs::{
    ProgramError, Xdp, XdpMode,
    links::FdLink,
    xdp::{XdpLink, XdpLinkId},
};
use embargo_abi::{Link, MAX_IFINDEX};

use super::{
    AttachMode, Attached, Attachment, Dataplane, DataplaneError, EgressLink, TcHeld, detach_error,
    link_error, pin_error,
    pins::{keep_pinned, link_pin_path},
    system,
};
use crate::config::{self, Role};

/// How an attachment's XDP link is held.
pub(super) enum Held {
    /// Owned by the program: dropping the program detaches it.
    Program(XdpLinkId),
    /// Pinned under bpffs at `path`: the link (and with it the program and its maps) outlives
    /// the agent; removing the pin and closing the fd detaches it.
    Pinned { path: PathBuf, link: FdLink },
}

impl Dataplane {
    /// Attaches to `iface`: native mode first in `auto`, falling back to generic with a log line;
    /// with `egress`, the TC egress classifier too ([`Dataplane::attach_egress`]). All or
    /// nothing: if the classifier cannot be attached, the XDP attachment is undone.
    pub fn attach(&mut self, iface: &config::Interface) -> Result<&Attachment, DataplaneError> {
        if iface.egress && iface.role != Role::Outside {
            return Err(DataplaneError::EgressNotOutside {
                name: iface.name.clone(),
                role: iface.role,
            });
        }
        let ifindex =
            system::ifindex(&iface.name).ok_or_else(|| DataplaneError::UnknownInterface {
                name: iface.name.clone(),
            })?;
        if ifindex >= MAX_IFINDEX {
            return Err(DataplaneError::IfindexTooLarge {
                name: iface.name.clone(),
                ifindex,
                max: MAX_IFINDEX,
            });
        }
        let link = link_of(&iface.name)?;
        let is_bond = system::driver(&iface.name).is_ok_and(|d| d == "bonding");
        if is_bond && iface.mode == config::XdpMode::Native {
            tracing::warn!(
                interface = %iface.name,
                "native XDP on a bond runs on its slaves, whose packets carry the slave's ifindex: \
                 they pass without a role; use mode auto or generic on bonds"
            );
        }
        self.set_role(ifindex, iface.role.abi())?;
        self.set_link(ifindex, link)?;
        let program: &mut Xdp = self
            .ebpf
            .program_mut(embargo_abi::programs::CLASSIFY)
            .expect("loaded in Dataplane::load")
            .try_into()
            .expect("an XDP program");
        let attach = |program: &mut Xdp, mode: XdpMode, label: AttachMode| {
            program
                .attach_to_if_index(ifindex, mode)
                .map_err(|source| match &source {
                    ProgramError::SyscallError(s)
                        if s.io_error.raw_os_error() == Some(libc::EPERM) =>
                    {
                        DataplaneError::Privileges {
                            doing: format!("attaching to {}", iface.name),
                        }
                    }
                    _ => DataplaneError::Attach {
                        name: iface.name.clone(),
                        mode: label,
                        source: Box::new(source),
                    },
                })
        };
        let (xdp_link, mode) = match iface.mode {
            config::XdpMode::Native => (
                attach(program, XdpMode::Driver, AttachMode::Native)?,
                AttachMode::Native,
            ),
            config::XdpMode::Generic => (
                attach(program, XdpMode::Skb, AttachMode::Generic)?,
                AttachMode::Generic,
            ),
            // No layer-3 driver runs XDP natively on what it receives (tun's native hook sees
            // only what user space writes, through the generic path anyway): generic, no try.
            config::XdpMode::Auto if link == Link::RawIp => {
                tracing::info!(
                    interface = %iface.name,
                    "layer-3 interface (packets start at the IP header): generic XDP"
                );
                (
                    attach(program, XdpMode::Skb, AttachMode::Generic)?,
                    AttachMode::Generic,
                )
            }
            // A bond runs a native program on its slaves' drivers, which report the slave's
            // ifindex, not the bond's: its role would not apply. Generic sees the bond's.
            config::XdpMode::Auto if is_bond => {
                tracing::info!(
                    interface = %iface.name,
                    "bond: generic XDP (native mode would run on the slaves, under their ifindex)"
                );
                (
                    attach(program, XdpMode::Skb, AttachMode::Generic)?,
                    AttachMode::Generic,
                )
            }
            config::XdpMode::Auto => match attach(program, XdpMode::Driver, AttachMode::Native) {
                Ok(link) => (link, AttachMode::Native),
                Err(DataplaneError::Attach { source, .. }) => {
                    tracing::warn!(
                        interface = %iface.name,
                        error = %source,
                        "native XDP unavailable, falling back to generic mode"
                    );
                    (
                        attach(program, XdpMode::Skb, AttachMode::Generic)?,
                        AttachMode::Generic,
                    )
                }
                Err(e) => return Err(e),
            },
        };
        let egress = if iface.egress {
            match self.attach_egress(ifindex, &iface.name) {
                Ok(e) => Some(e),
                Err(e) => {
                    let _ = self.xdp_program_mut().detach(xdp_link);
                    let _ = self.set_role(ifindex, embargo_abi::IfaceRole::None);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let held = self.hold(xdp_link, &iface.name, None)?;
        self.attached.push(Attached {
            attachment: Attachment {
                name: iface.name.clone(),
                ifindex,
                role: iface.role,
                mode,
                egress: iface.egress,
                link,
            },
            xdp: held,
            egress,
        });
        Ok(&self.attached.last().expect("just pushed").attachment)
    }

    /// Takes link `id` from the program and, with a pin folder, pins it (or keeps it pinned at
    /// `pinned`, where it already is).
    pub(super) fn hold(
        &mut self,
        id: XdpLinkId,
        name: &str,
        pinned: Option<PathBuf>,
    ) -> Result<Held, DataplaneError> {
        let Some(dir) = self.pin_dir.clone() else {
            return Ok(Held::Program(id));
        };
        let link = self
            .xdp_program_mut()
            .take_link(id)
            .map_err(|e| link_error(format!("taking the XDP link of {name}"), e))?;
        let fd =
            FdLink::try_from(link).map_err(|e| link_error(format!("the XDP link of {name}"), e))?;
        let (path, link) = keep_pinned(fd, pinned, link_pin_path(&dir, name), "XDP", name)?;
        Ok(Held::Pinned { path, link })
    }

    /// Turns a held link back into an [`XdpLink`] (from `program` for a program-owned one).
    fn into_xdp_link(
        held: Held,
        program: &mut Xdp,
        name: &str,
    ) -> Result<(XdpLink, Option<PathBuf>), DataplaneError> {
        match held {
            Held::Program(id) => program
                .take_link(id)
                .map(|l| (l, None))
                .map_err(|e| link_error(format!("taking the XDP link of {name}"), e)),
            Held::Pinned { path, link } => XdpLink::try_from(link)
                .map(|l| (l, Some(path)))
                .map_err(|e| link_error(format!("the pinned XDP link of {name}"), e)),
        }
    }

    /// Detaches from every interface (the TC egress classifier first, and the `clsact` qdisc
    /// if this agent added it) and clears their roles.
    pub fn detach_all(&mut self) -> Vec<(String, Result<(), DataplaneError>)> {
        let attached = std::mem::take(&mut self.attached);
        // Every TC egress classifier first, then every XDP link.
        let mut xdp = Vec::new();
        for Attached {
            attachment: att,
            xdp: held,
            egress,
        } in attached
        {
            let r = egress.map_or(Ok(()), |link| {
                let detached = match link.held {
                    // Dropping the link detaches it (a netlink filter is deleted).
                    TcHeld::Owned(l) => {
                        drop(l);
                        Ok(())
                    }
                    TcHeld::Pinned { path, link } => {
                        let r = std::fs::remove_file(&path).map_err(|e| {
                            pin_error(format!("removing the pin {}", path.display()), e)
                        });
                        drop(link);
                        r
                    }
                };
                detached.and_then(|()| {
                    if link.added_clsact {
                        system::qdisc_del_clsact(att.ifindex).map_err(|source| {
                            DataplaneError::Qdisc {
                                doing: format!(
                                    "removing the clsact qdisc embargo added to {}",
                                    att.name
                                ),
                                source,
                            }
                        })
                    } else {
                        Ok(())
                    }
                })
            });
            xdp.push((att, held, r));
        }
        let mut results = Vec::new();
        let mut ifindexes = Vec::new();
        for (att, held, egress) in xdp {
            let r = match held {
                Held::Program(id) => self
                    .xdp_program_mut()
                    .detach(id)
                    .map_err(|e| detach_error(format!("detaching from {}", att.name), e)),
                Held::Pinned { path, link } => {
                    // Without its pin, closing the last fd destroys the link: detached.
                    let r = std::fs::remove_file(&path)
                        .map_err(|e| pin_error(format!("removing the pin {}", path.display()), e));
                    drop(link);
                    r
                }
            };
            ifindexes.push(att.ifindex);
            results.push((att.name, r.and(egress)));
        }
        for ifindex in ifindexes {
            let _ = self.set_role(ifindex, embargo_abi::IfaceRole::None);
        }
        results
    }

    /// Moves every attachment of `old` to this (newly loaded) generation, atomically per
    /// interface: the role (and egress flag) is set here first, then the interface's XDP link
    /// is pointed at this program (`bpf_link_update`); the interface is never without a
    /// program. The TC egress classifier moves the same way, without a gap and without a
    /// packet seen by both generations: a TCX link is updated in place (`bpf_link_update`); a
    /// netlink filter is replaced at its priority and handle, which swaps the program under
    /// the filter atomically. A `clsact` qdisc the old generation added stays and is this
    /// one's to remove.
    pub fn take_over(&mut self, old: &mut Dataplane) -> Result<(), DataplaneError> {
        // Events stay as they were set (on or off, the same limits) before traffic arrives.
        self.set_event_limits(old.event_limits())?;
        let attached = std::mem::take(&mut old.attached);
        if self.pin_dir.is_none() {
            self.pin_dir = old.pin_dir.clone();
        }
        // This generation's maps are pinned before any interface switches to them, so the pin
        // folder always holds the maps of whatever program is attached (the caller unpins the
        // old generation's once the state file names this one).
        if old.maps_dir.is_some()
            && self.maps_dir.is_none()
            && let Some(dir) = self.pin_dir.clone()
        {
            self.pin_maps(&dir)?;
        }
        // Every XDP link out of the old program first, then every TC egress link.
        let mut taken = Vec::new();
        let mut egress_links = Vec::new();
        for a in attached {
            let link = Self::into_xdp_link(a.xdp, old.xdp_program_mut(), &a.attachment.name)?;
            egress_links.push(a.egress);
            taken.push((a.attachment, link));
        }
        let mut taken_egress = Vec::new();
        for (egress, (att, _)) in egress_links.into_iter().zip(&taken) {
            taken_egress.push(match egress {
                Some(e) => Some((Self::into_tc_link(e.held, &att.name)?, e.added_clsact)),
                None => None,
            });
        }
        for ((att, (link, pinned)), egress) in taken.into_iter().zip(taken_egress) {
            self.set_role(att.ifindex, att.role.abi())?;
            self.set_link(att.ifindex, att.link)?;
            if egress.is_some() {
                self.set_egress(att.ifindex, true)?;
            }
            let id = self
                .xdp_program_mut()
                .attach_to_link(link)
                .map_err(|e| link_error(format!("switching {} to the new program", att.name), e))?;
            let held = self.hold(id, &att.name, pinned)?;
            let egress = match egress {
                Some(((link, pinned), added_clsact)) => {
                    let id = self
                        .egress_program_mut()
                        .attach_to_link(link)
                        .map_err(|e| {
                            link_error(
                                format!("switching {} to the new TC egress program", att.name),
                                e,
                            )
                        })?;
                    Some(EgressLink {
                        held: self.hold_egress(id, &att.name, pinned)?,
                        added_clsact,
                    })
                }
                None => None,
            };
            self.attached.push(Attached {
                attachment: att,
                xdp: held,
                egress,
            });
        }
        Ok(())
    }
}

/// What packets on interface `name` start with, from its hardware type; refuses a type the
/// programs cannot parse.
pub(super) fn link_of(name: &str) -> Result<Link, DataplaneError> {
    let arphrd = system::arphrd(name).map_err(|e| match e.raw_os_error() {
        Some(libc::ENODEV) => DataplaneError::UnknownInterface {
            name: name.to_owned(),
        },
        _ => DataplaneError::HardwareType {
            interface: name.to_owned(),
            source: e,
        },
    })?;
    Link::from_arphrd(arphrd).ok_or_else(|| DataplaneError::UnsupportedLink {
        name: name.to_owned(),
        arphrd,
    })
}
