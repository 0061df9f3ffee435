//! [`DataplaneError`]: what went wrong in the data plane, each variant saying what to do.
//!
//! A kernel or aya error is never shown bare: the variant names what was being done (the map,
//! the interface, the pin) so the message reads as a sentence a person can act on.

use aya::{EbpfError, maps::MapError, programs::ProgramError};

use super::{AttachMode, TcApi, bpffs, trie::build::TableError};
use crate::config::Role;

/// Errors a person can act on, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The policy's tries cannot be built.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The pin folder is not, and cannot be put, on a bpf file system.
    #[error(transparent)]
    Bpffs(#[from] bpffs::BpffsError),
    /// Not enough privilege to load BPF programs or attach XDP.
    #[error(
        "permission denied while {doing}: embargo needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (or root)"
    )]
    Privileges { doing: String },
    /// The kernel lacks a feature the program needs.
    #[error("kernel {found} is too old: embargo needs Linux {needed} or newer")]
    KernelTooOld { found: String, needed: String },
    /// The kernel would not create a map of the size the policy needs.
    #[error(
        "the kernel refused map {map} with {entries} entries ({bytes} bytes): {source}; the policy does not fit, reduce it or raise the memory limits"
    )]
    MapTooLarge {
        map: &'static str,
        entries: u64,
        bytes: u64,
        #[source]
        source: Box<EbpfError>,
    },
    /// The verifier rejected a program; the log says why.
    #[error("the kernel verifier rejected the {program} ({io_error}); verifier log:\n{log}")]
    Verifier {
        /// `XDP program` or `TC egress program`.
        program: &'static str,
        io_error: std::io::Error,
        log: String,
    },
    /// The change does not fit the loaded maps; nothing was written. Load a new generation.
    #[error("the change does not fit in place: {reason}")]
    NeedsRebuild { reason: String },
    /// More interfaces than the counters have slots for.
    #[error("embargo counts at most {max} interfaces per agent; attach to fewer")]
    TooManyInterfaces { max: u32 },
    /// No interface with that name.
    #[error(
        "no interface named `{name}` (see `ip link`); check the name in the config or --interface"
    )]
    UnknownInterface { name: String },
    /// Interface index beyond the role map.
    #[error("interface `{name}` has ifindex {ifindex}, over the supported {max}")]
    IfindexTooLarge {
        name: String,
        ifindex: u32,
        max: u32,
    },
    /// The interface's hardware type is one the programs cannot parse.
    #[error(
        "interface `{name}` has hardware type {arphrd} (ARPHRD_*, see /sys/class/net/{name}/type), \
         which embargo cannot parse: it reads Ethernet (with VLAN tags or PPPoE) and layer-3 \
         devices (tun, WireGuard, PPP, IPIP, SIT, GRE); attach to one of those instead"
    )]
    UnsupportedLink { name: String, arphrd: u16 },
    /// Attaching failed in every allowed mode.
    #[error("cannot attach XDP to `{name}` in {mode} mode: {source}")]
    Attach {
        name: String,
        mode: AttachMode,
        #[source]
        source: Box<ProgramError>,
    },
    /// The TC egress classifier could not be attached (nothing of it was left behind, and the
    /// interface's XDP attachment was undone).
    #[error("cannot attach the TC egress classifier to `{name}` ({api}): {source}")]
    AttachEgress {
        name: String,
        api: TcApi,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Egress is enforced on `outside` interfaces only.
    #[error(
        "egress is only for outside interfaces; `{name}` is {role}: enable it on the interface that faces the world"
    )]
    EgressNotOutside { name: String, role: Role },
    /// The egress flag lives in an interface's role-map entry, which needs a role.
    #[error("ifindex {ifindex} has no role: give it one before enabling egress")]
    EgressWithoutRole { ifindex: u32 },
    /// The link type lives in an interface's role-map entry, which needs a role.
    #[error("ifindex {ifindex} has no role: give it one before setting its link type")]
    LinkWithoutRole { ifindex: u32 },
    /// The pin folder or a generation's folder in it is owned by another user or writable by
    /// group or others: whoever controls it could unpin the links and end enforcement.
    #[error(transparent)]
    PinFolder(#[from] crate::files::write::SafeFsError),
    /// A map of the loaded object could not be found, opened, read or written.
    #[error("{doing}: {source}")]
    Map {
        doing: String,
        #[source]
        source: MapError,
    },
    /// A pin (of a link or a map) or a pin folder could not be created or removed.
    #[error("{doing}: {source}")]
    Pin {
        doing: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A link could not be taken from a program, opened from its pin, or moved to a program.
    #[error("{doing}: {source}")]
    Link {
        doing: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The XDP program could not be detached from an interface.
    #[error("{doing}: {source}")]
    Detach {
        doing: String,
        #[source]
        source: ProgramError,
    },
    /// The object or one of its programs could not be loaded (other than for privileges, the
    /// verifier or map sizes, which have their own variants).
    #[error("{doing}: {source}")]
    Load {
        doing: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The `clsact` qdisc the agent added could not be removed.
    #[error("{doing}: {source}")]
    Qdisc {
        doing: String,
        #[source]
        source: std::io::Error,
    },
    /// An interface's hardware type (what its packets start with) could not be read.
    #[error("reading the hardware type of {interface}: {source}")]
    HardwareType {
        interface: String,
        #[source]
        source: std::io::Error,
    },
    /// A trie map could not be memory-mapped or filled through its mapping.
    #[error("filling map {map} through mmap: {source}")]
    Mmap {
        map: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn map_error(doing: impl Into<String>, source: MapError) -> DataplaneError {
    DataplaneError::Map {
        doing: doing.into(),
        source,
    }
}

pub(crate) fn pin_error(
    doing: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> DataplaneError {
    DataplaneError::Pin {
        doing: doing.into(),
        source: Box::new(source),
    }
}

pub(crate) fn link_error(
    doing: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> DataplaneError {
    DataplaneError::Link {
        doing: doing.into(),
        source: Box::new(source),
    }
}

pub(crate) fn detach_error(doing: impl Into<String>, source: ProgramError) -> DataplaneError {
    DataplaneError::Detach {
        doing: doing.into(),
        source,
    }
}

pub(crate) fn load_error(
    doing: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> DataplaneError {
    DataplaneError::Load {
        doing: doing.into(),
        source: Box::new(source),
    }
}
