//! The guard a source's prefixes pass before its body becomes the last-known-good copy, and
//! again when that copy is read: the same broad-prefix rule the compiler applies to network
//! groups (`[guard] broadest_v4` / `broadest_v6`, `guard_override`), checked per source.
//!
//! Invariant: a copy that the compile of a network group naming the source would refuse for a
//! broad prefix is never stored, and one stored before (by an older agent) is not used: it is a
//! source without usable content, so `on_source_failure` decides. A body that parses but fails
//! here is refused whole, like a body with a bad line, and the previous copy stays.
//!
//! The special-purpose ranges ([`crate::policy::special`]: private, loopback, documentation,
//! ...) follow the broad-prefix rule: a prefix overlapping one is refused unless every group
//! naming the source has a `guard_override`.
//!
//! A source can be named by several groups: the strictest one decides (a group without
//! `guard_override` refuses what another group's override would accept). A `/0` needs an
//! override whose reason says "default route", whatever `broadest_*` says.

use ipnetwork::IpNetwork;

use super::parse::LineError;
use crate::config::Config;

/// What the groups naming a source let through beyond the guard's limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Allowance {
    /// Nothing broader than `broadest_*` (no `guard_override`, or no group names the source).
    #[default]
    None,
    /// Broad prefixes, not a default route (`guard_override` without "default route").
    Broad,
    /// Anything (`guard_override` whose reason contains "default route").
    DefaultRoute,
}

/// The guard one source's prefixes must pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceGuard {
    pub broadest_v4: u8,
    pub broadest_v6: u8,
    pub allowance: Allowance,
}

impl SourceGuard {
    /// The guard for source `name` of `config`: the main file's limits and the strictest
    /// allowance of the network groups that name it.
    pub fn of(config: &Config, name: &str) -> Self {
        let allowance = config
            .entities
            .iter()
            .flat_map(|e| &e.def.networks)
            .filter(|g| g.sources.iter().any(|s| s.get_ref() == name))
            .map(|g| match &g.guard_override {
                None => Allowance::None,
                Some(r) if r.contains("default route") => Allowance::DefaultRoute,
                Some(_) => Allowance::Broad,
            })
            .min()
            .unwrap_or(Allowance::None);
        Self {
            broadest_v4: config.main.guard.broadest_v4,
            broadest_v6: config.main.guard.broadest_v6,
            allowance,
        }
    }

    /// Checks every prefix (with its 1-based line); the first one refused, with what to do.
    pub fn check(&self, entries: &[(IpNetwork, u32)]) -> Result<(), LineError> {
        entries
            .iter()
            .try_for_each(|(net, line)| self.check_one(*net, *line as usize))
    }

    fn check_one(&self, net: IpNetwork, line: usize) -> Result<(), LineError> {
        let len = net.prefix();
        let broadest = if net.is_ipv4() {
            self.broadest_v4
        } else {
            self.broadest_v6
        };
        let message = if len == 0 {
            if self.allowance == Allowance::DefaultRoute {
                return Ok(());
            }
            format!(
                "`{net}` is a default route and would block a whole address family; the guard \
                 refuses it unless every network group naming this source sets \
                 guard_override = \"<reason containing 'default route'>\""
            )
        } else if len < broadest {
            if self.allowance >= Allowance::Broad {
                return Ok(());
            }
            format!(
                "`{net}` is broader than the guard's /{broadest}; if that is intended, set \
                 guard_override = \"<reason>\" on every network group naming this source"
            )
        } else if let Some((range, kind)) = crate::policy::special::overlap(&net) {
            if self.allowance >= Allowance::Broad {
                return Ok(());
            }
            format!(
                "{} (IANA special-purpose): a gateway blocking it blocks its own networks or \
                 services, never a sanctioned entity; if that is intended, set \
                 guard_override = \"<reason>\" on every network group naming this source",
                crate::policy::special::describe(&net, &range, kind)
            )
        } else {
            return Ok(());
        };
        Err(LineError { line, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<(IpNetwork, u32)> {
        list.iter()
            .enumerate()
            .map(|(i, n)| (n.parse().unwrap(), i as u32 + 1))
            .collect()
    }

    fn guard(allowance: Allowance) -> SourceGuard {
        SourceGuard {
            broadest_v4: 8,
            broadest_v6: 19,
            allowance,
        }
    }

    #[test]
    fn broad_prefixes_and_default_routes_need_the_matching_override() {
        let ok = nets(&["8.8.8.0/24", "44.0.0.0/8", "2a00:1450::/32"]);
        for a in [Allowance::None, Allowance::Broad, Allowance::DefaultRoute] {
            guard(a).check(&ok).unwrap();
        }
        let broad = nets(&["8.8.8.0/24", "10.0.0.0/7"]);
        let e = guard(Allowance::None).check(&broad).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("broader than the guard's /8"), "{e}");
        guard(Allowance::Broad).check(&broad).unwrap();
        for def in ["0.0.0.0/0", "::/0"] {
            let d = nets(&["8.8.8.0/24", def]);
            for a in [Allowance::None, Allowance::Broad] {
                let e = guard(a).check(&d).unwrap_err();
                assert!(e.message.contains("default route"), "{e}");
            }
            guard(Allowance::DefaultRoute).check(&d).unwrap();
        }
        // A /0 is refused even when the limits would let everything through.
        let lax = SourceGuard {
            broadest_v4: 0,
            broadest_v6: 0,
            allowance: Allowance::None,
        };
        assert!(lax.check(&nets(&["0.0.0.0/0"])).is_err());
    }

    /// A feed carrying a special-purpose prefix is refused whole, at its line, like one
    /// carrying a broad prefix, unless every group naming it overrides the guard.
    #[test]
    fn special_purpose_prefixes_need_an_override() {
        for (p, kind) in [
            ("192.168.1.0/24", "private"),
            ("169.254.169.254/32", "link-local"),
            ("203.0.113.0/24", "documentation"),
            ("ff02::fb/128", "multicast"),
        ] {
            let feed = nets(&["8.8.8.0/24", p]);
            let e = guard(Allowance::None).check(&feed).unwrap_err();
            assert_eq!(e.line, 2, "{p}");
            assert!(e.message.contains(&format!("the {kind} range")), "{e}");
            assert!(e.message.contains("guard_override"), "{e}");
            guard(Allowance::Broad).check(&feed).unwrap();
        }
    }

    #[test]
    fn the_strictest_group_naming_the_source_decides() {
        let text = "enforce = [\"UK\"]\n[guard]\nbroadest_v4 = 12\n\
            [[sources]]\nname = \"feed\"\nurl = \"https://e.org/f\"\nformat = \"list\"\n\
            [[entities]]\nid = \"a\"\nname = \"A\"\naction = \"drop\"\n\
            [[entities.designations]]\nauthority = \"UK\"\nregime = \"r\"\nreference = \"X\"\n\
            listed_on = 2025-01-01\nsource = \"s\"\n\
            [[entities.networks]]\nsources = [\"feed\"]\nguard_override = \"a default route, approved\"\n\
            [entities.networks.evidence]\nkind = \"advisory\"\nsource = \"s\"\n\
            retrieved = 2026-01-01\nconfidence = \"low\"\n";
        let c = crate::config::parse(std::path::Path::new("m.toml"), text.to_owned()).unwrap();
        let g = SourceGuard::of(&c, "feed");
        assert_eq!((g.broadest_v4, g.allowance), (12, Allowance::DefaultRoute));
        assert_eq!(SourceGuard::of(&c, "other").allowance, Allowance::None);
        let second = text.replace(
            "[[entities.networks]]\n",
            "[[entities.networks]]\nsources = [\"feed\"]\n[entities.networks.evidence]\n\
             kind = \"advisory\"\nsource = \"s\"\nretrieved = 2026-01-01\nconfidence = \"low\"\n\
             [[entities.networks]]\n",
        );
        let c = crate::config::parse(std::path::Path::new("m.toml"), second).unwrap();
        assert_eq!(SourceGuard::of(&c, "feed").allowance, Allowance::None);
    }
}
