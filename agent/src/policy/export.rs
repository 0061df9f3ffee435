//! `embargo export`: the enforced policy in the formats other firewalls load — a plain CIDR list,
//! a PAN-OS External Dynamic List, an `nft -f` file, an `ipset restore` file, a STIX 2.1 bundle.
//!
//! What is exported is what the data plane enforces, not what the files list: the compiled rules
//! (allow prefixes subtracted, evidence and designation dates applied), with the data plane's
//! longest-match answer made explicit. A prefix of one entity nested in a shorter prefix of
//! another belongs to the first; the shorter one is exported without it, so an address is in at
//! most one entity's set and in the set of the entity `embargo why` names. Adjacent pieces of
//! one entity are merged and every range is written as its minimal CIDRs.
//!
//! Only entities whose action is `drop` are exported unless monitored ones are asked for: an
//! export feeds block lists, and a monitored entity is not blocked here.
//!
//! One thing the other tools do differently: the data plane also matches an IPv4-mapped IPv6
//! address (`::ffff:a.b.c.d`) against the IPv4 prefixes; nft and ipset sets of one family do not.
//!
//! Output is deterministic: the same compiled policy gives the same bytes (STIX ids are UUIDv5
//! of the entity and prefix; timestamps are the compile date's midnight UTC).

use std::{
    fmt::Write as _,
    io::{self, Write},
    net::IpAddr,
    str::FromStr,
};

use ipnetwork::IpNetwork;
use serde_json::json;

use crate::{
    config::Action,
    policy::{
        cidr::{bounds, range_to_cidrs},
        compile::{Compiled, CompiledEntity},
    },
};

/// The export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One prefix per line, nothing else.
    Cidr,
    /// PAN-OS External Dynamic List: `prefix entity designations` per line.
    Edl,
    /// An `nft -f` file: named interval sets per entity and family in `table inet embargo`.
    Nft,
    /// An `ipset restore` file: a `hash:net` set per entity and family.
    Ipset,
    /// A STIX 2.1 bundle: an indicator per prefix, the designations as external references.
    Stix,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Cidr,
        Format::Edl,
        Format::Nft,
        Format::Ipset,
        Format::Stix,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Cidr => "cidr",
            Format::Edl => "edl",
            Format::Nft => "nft",
            Format::Ipset => "ipset",
            Format::Stix => "stix",
        }
    }
}

impl FromStr for Format {
    type Err = ExportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| ExportError::UnknownFormat(s.to_owned()))
    }
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("unknown export format `{0}`: use cidr, edl, nft, ipset or stix")]
    UnknownFormat(String),
    #[error(
        "entity `{0}` is not in the enforced policy (`embargo check` lists the entities and why one is left out)"
    )]
    UnknownEntity(String),
    #[error("entity `{0}` is monitored, not blocked: add --monitored to export monitored entities")]
    Monitored(String),
    #[error("writing the export: {0}")]
    Write(#[from] io::Error),
}

/// What to export.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only this entity (by id).
    pub entity: Option<String>,
    /// Entities whose action is `monitor` too.
    pub monitored: bool,
}

/// One entity's share of the enforced address space, per family, as minimal CIDRs.
#[derive(Debug)]
pub struct EntityPrefixes<'a> {
    pub entity: &'a CompiledEntity,
    pub v4: Vec<IpNetwork>,
    pub v6: Vec<IpNetwork>,
}

/// Each selected entity's addresses as the data plane answers them (longest match), disjoint
/// across entities, in the compiled policy's entity order; entities with no address left are
/// kept (an empty set still names the entity).
pub fn enforced<'a>(
    c: &'a Compiled,
    sel: &Selection,
) -> Result<Vec<EntityPrefixes<'a>>, ExportError> {
    if let Some(id) = &sel.entity {
        let e = c
            .entities
            .iter()
            .find(|e| &e.id == id)
            .ok_or_else(|| ExportError::UnknownEntity(id.clone()))?;
        if e.action == Action::Monitor && !sel.monitored {
            return Err(ExportError::Monitored(id.clone()));
        }
    }
    let mut out: Vec<EntityPrefixes> = c
        .entities
        .iter()
        .map(|entity| EntityPrefixes {
            entity,
            v4: Vec::new(),
            v6: Vec::new(),
        })
        .collect();
    for v4 in [true, false] {
        let rules: Vec<(u128, u128, u32)> = c
            .rules
            .iter()
            .filter(|r| r.net.is_ipv4() == v4)
            .map(|r| {
                let (lo, hi) = bounds(&r.net);
                (lo, hi, r.entity)
            })
            .collect();
        for (lo, hi, entity) in longest_match_segments(rules) {
            let Some(slot) = out.get_mut(entity as usize) else {
                continue;
            };
            let (start, end) = if v4 {
                (
                    IpAddr::from(std::net::Ipv4Addr::from(lo as u32)),
                    IpAddr::from(std::net::Ipv4Addr::from(hi as u32)),
                )
            } else {
                (
                    IpAddr::from(std::net::Ipv6Addr::from(lo)),
                    IpAddr::from(std::net::Ipv6Addr::from(hi)),
                )
            };
            let cidrs = range_to_cidrs(start, end).expect("same family, start <= end");
            if v4 {
                slot.v4.extend(cidrs);
            } else {
                slot.v6.extend(cidrs);
            }
        }
    }
    out.retain(|p| {
        sel.entity.as_ref().is_none_or(|id| &p.entity.id == id)
            && (p.entity.action == Action::Drop || sel.monitored)
    });
    Ok(out)
}

/// The address space of nested-or-disjoint ranges (prefixes are) cut into disjoint segments,
/// each owned by the innermost range over it, adjacent segments of one owner merged. Linear
/// after the sort.
fn longest_match_segments(mut ranges: Vec<(u128, u128, u32)>) -> Vec<(u128, u128, u32)> {
    // Outer before inner at the same start.
    ranges.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out: Vec<(u128, u128, u32)> = Vec::new();
    let mut push = |lo: u128, hi: u128, owner: u32| {
        if let Some(last) = out.last_mut()
            && last.2 == owner
            && last.1.checked_add(1) == Some(lo)
        {
            last.1 = hi;
            return;
        }
        out.push((lo, hi, owner));
    };
    // Open ranges, innermost last; `cursor` is the first address not yet written (None: past
    // the end of the address space).
    let mut stack: Vec<(u128, u128, u32)> = Vec::new();
    let mut cursor: Option<u128> = None;
    for (lo, hi, owner) in ranges {
        // Close the ranges that end before this one starts.
        while let Some(&(_, top_hi, top_owner)) = stack.last() {
            if top_hi >= lo {
                break;
            }
            stack.pop();
            if let Some(c) = cursor
                && c <= top_hi
            {
                push(c, top_hi, top_owner);
            }
            cursor = top_hi.checked_add(1);
        }
        // The part of the enclosing range before this one.
        if let (Some(&(_, _, top_owner)), Some(c)) = (stack.last(), cursor)
            && c < lo
        {
            push(c, lo - 1, top_owner);
        }
        if stack.last().is_some_and(|&(_, top_hi, _)| hi > top_hi) {
            // Not nested: prefixes are, so this is a duplicate span; the later one wins as
            // an inner range would.
            continue;
        }
        stack.push((lo, hi, owner));
        cursor = Some(lo);
    }
    while let Some((_, top_hi, top_owner)) = stack.pop() {
        if let Some(c) = cursor
            && c <= top_hi
        {
            push(c, top_hi, top_owner);
        }
        cursor = top_hi.checked_add(1);
    }
    out
}

/// Writes the export of `c` in `format` to `w`.
pub fn write(
    c: &Compiled,
    format: Format,
    sel: &Selection,
    w: &mut impl Write,
) -> Result<(), ExportError> {
    let sets = enforced(c, sel)?;
    let text = match format {
        Format::Cidr => cidr(&sets),
        Format::Edl => edl(&sets),
        Format::Nft => nft(c, &sets),
        Format::Ipset => ipset(c, &sets),
        Format::Stix => stix(c, &sets),
    };
    w.write_all(text.as_bytes())?;
    w.flush()?;
    Ok(())
}

/// Every selected prefix, IPv4 then IPv6, in address order (one list: entities merged).
fn cidr(sets: &[EntityPrefixes]) -> String {
    let mut segments: Vec<(bool, u128, u128)> = Vec::new();
    for s in sets {
        for n in s.v4.iter().chain(&s.v6) {
            let (lo, hi) = bounds(n);
            segments.push((n.is_ipv6(), lo, hi));
        }
    }
    segments.sort();
    // Pieces of different entities that touch become one range.
    let mut merged: Vec<(bool, u128, u128)> = Vec::new();
    for (v6, lo, hi) in segments {
        if let Some(last) = merged.last_mut()
            && last.0 == v6
            && last.2.checked_add(1) == Some(lo)
        {
            last.2 = hi;
            continue;
        }
        merged.push((v6, lo, hi));
    }
    let mut out = String::new();
    for (v6, lo, hi) in merged {
        let (a, b) = if v6 {
            (
                IpAddr::from(std::net::Ipv6Addr::from(lo)),
                IpAddr::from(std::net::Ipv6Addr::from(hi)),
            )
        } else {
            (
                IpAddr::from(std::net::Ipv4Addr::from(lo as u32)),
                IpAddr::from(std::net::Ipv4Addr::from(hi as u32)),
            )
        };
        for n in range_to_cidrs(a, b).expect("same family") {
            let _ = writeln!(out, "{n}");
        }
    }
    out
}

/// The designations an entity is enforced under, for comments: `UK:CYB0114 US:CYBER2`.
fn references(e: &CompiledEntity) -> String {
    e.designations
        .iter()
        .map(|d| format!("{}:{}", d.authority, d.reference))
        .collect::<Vec<_>>()
        .join(" ")
}

/// PAN-OS EDL lines: `prefix entity-id designations` (the text after the first space is a
/// comment to PAN-OS), in address order.
fn edl(sets: &[EntityPrefixes]) -> String {
    let mut lines: Vec<((bool, u128), String)> = Vec::new();
    for s in sets {
        let refs = references(s.entity);
        for n in s.v4.iter().chain(&s.v6) {
            let comment = if refs.is_empty() {
                s.entity.id.clone()
            } else {
                format!("{} {refs}", s.entity.id)
            };
            lines.push(((n.is_ipv6(), bounds(n).0), format!("{n} {comment}")));
        }
    }
    lines.sort();
    let mut out = String::new();
    for (_, l) in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// A set name for `entity` and family: nft and ipset names take letters, digits and `_`.
fn set_name(entity: &str, family: &str) -> String {
    let slug: String = entity
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{slug}_{family}")
}

fn header(c: &Compiled, comment: &str) -> String {
    format!(
        "{comment} Generated by embargo export from the policy compiled on {} (digest {}).\n\
         {comment} The enforced prefixes: allow subtracted, dates applied, longest match explicit.\n",
        c.today,
        c.digest()
    )
}

/// `nft -f`: one named interval set per entity and family in `table inet embargo`, flushed and
/// refilled in one transaction, so loading the file again replaces the elements.
fn nft(c: &Compiled, sets: &[EntityPrefixes]) -> String {
    let mut out = header(c, "#");
    out.push_str(
        "# Use the sets in your own chains, e.g.\n\
         #   nft add rule inet embargo forward ip daddr @<entity>_v4 drop\n\
         table inet embargo {\n",
    );
    for s in sets {
        for (family, ty) in [("v4", "ipv4_addr"), ("v6", "ipv6_addr")] {
            let _ = writeln!(
                out,
                "\tset {} {{\n\t\ttype {ty}\n\t\tflags interval\n\t\tcomment \"{}\"\n\t}}",
                set_name(&s.entity.id, family),
                nft_comment(&format!("{} {}", s.entity.name, references(s.entity)))
            );
        }
    }
    out.push_str("}\n");
    for s in sets {
        for (family, prefixes) in [("v4", &s.v4), ("v6", &s.v6)] {
            let name = set_name(&s.entity.id, family);
            let _ = writeln!(out, "flush set inet embargo {name}");
            for chunk in prefixes.chunks(1024) {
                let elements: Vec<String> = chunk.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    out,
                    "add element inet embargo {name} {{ {} }}",
                    elements.join(", ")
                );
            }
        }
    }
    out
}

/// nft comments are quoted strings of at most 128 bytes.
fn nft_comment(s: &str) -> String {
    let clean: String = s
        .trim()
        .chars()
        .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
        .collect();
    let mut end = clean.len().min(120);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    clean[..end].to_owned()
}

/// An ipset name (at most 31 bytes): `embargo_<entity>_<family>`, the entity shortened with a
/// digest when it is too long.
fn ipset_name(entity: &str, family: &str) -> String {
    let name = format!("embargo_{}", set_name(entity, family));
    if name.len() <= 31 {
        return name;
    }
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(entity.as_bytes());
    let short: String = set_name(entity, "").chars().take(12).collect();
    format!(
        "embargo_{short}{:02x}{:02x}{:02x}_{family}",
        digest[0], digest[1], digest[2]
    )
}

/// `ipset restore`: a `hash:net` set per entity and family, created if missing, flushed and
/// refilled.
fn ipset(c: &Compiled, sets: &[EntityPrefixes]) -> String {
    let mut out = header(c, "#");
    for s in sets {
        for (family, inet, prefixes) in [("v4", "inet", &s.v4), ("v6", "inet6", &s.v6)] {
            let name = ipset_name(&s.entity.id, family);
            let _ = writeln!(
                out,
                "create {name} hash:net family {inet} maxelem {} -exist",
                prefixes.len().max(65536)
            );
            let _ = writeln!(out, "flush {name}");
            for n in prefixes {
                let _ = writeln!(out, "add {name} {n}");
            }
        }
    }
    out
}

/// A deterministic STIX id: UUIDv5 of `what` in Embargo's namespace.
fn stix_id(kind: &str, what: &str) -> String {
    // Embargo's namespace: UUIDv5 of its name in the URL namespace.
    let ns = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"urn:embargo:export");
    format!("{kind}--{}", uuid::Uuid::new_v5(&ns, what.as_bytes()))
}

/// A STIX 2.1 bundle: the exporter's identity and one indicator per prefix, naming its entity
/// and carrying the entity's designations as external references.
fn stix(c: &Compiled, sets: &[EntityPrefixes]) -> String {
    let at = format!("{}T00:00:00.000Z", c.today.format("%Y-%m-%d"));
    let identity = stix_id("identity", "embargo");
    let mut objects = vec![json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": identity,
        "created": at,
        "modified": at,
        "name": "Embargo export",
        "identity_class": "system",
    })];
    for s in sets {
        let e = s.entity;
        let refs: Vec<serde_json::Value> = e
            .designations
            .iter()
            .map(|d| {
                let mut r = json!({
                    "source_name": format!("{} sanctions designation", d.authority),
                    "external_id": d.reference,
                    "description": format!("{} (listed {})", d.regime, d.listed_on.0),
                });
                if d.source.starts_with("https://") || d.source.starts_with("http://") {
                    r["url"] = json!(d.source);
                }
                r
            })
            .collect();
        for n in s.v4.iter().chain(&s.v6) {
            let kind = if n.is_ipv4() {
                "ipv4-addr"
            } else {
                "ipv6-addr"
            };
            let mut ind = json!({
                "type": "indicator",
                "spec_version": "2.1",
                "id": stix_id("indicator", &format!("{}|{n}", e.id)),
                "created_by_ref": identity,
                "created": at,
                "modified": at,
                "name": format!("{} ({})", e.name, e.id),
                "indicator_types": ["attribution"],
                "pattern": format!("[{kind}:value = '{n}']"),
                "pattern_type": "stix",
                "valid_from": at,
            });
            if !refs.is_empty() {
                ind["external_references"] = json!(refs);
            }
            objects.push(ind);
        }
    }
    let bundle = json!({
        "type": "bundle",
        "id": stix_id("bundle", &format!("{}|{}", c.today, c.digest())),
        "objects": objects,
    });
    let mut text = serde_json::to_string_pretty(&bundle).expect("JSON values serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(ranges: &[(u128, u128, u32)]) -> Vec<(u128, u128, u32)> {
        longest_match_segments(ranges.to_vec())
    }

    #[test]
    fn nested_ranges_belong_to_the_innermost() {
        // 0..=255 entity 0, 16..=31 entity 1 inside, 20..=23 entity 0 inside that.
        assert_eq!(
            seg(&[(0, 255, 0), (16, 31, 1), (20, 23, 0)]),
            [
                (0, 15, 0),
                (16, 19, 1),
                (20, 23, 0),
                (24, 31, 1),
                (32, 255, 0)
            ]
        );
        // Inner range at the very start and the very end of the outer one.
        assert_eq!(
            seg(&[(0, 255, 0), (0, 15, 1), (240, 255, 1)]),
            [(0, 15, 1), (16, 239, 0), (240, 255, 1)]
        );
        // Disjoint and adjacent ranges of one entity merge; of two, they stay apart.
        assert_eq!(
            seg(&[(0, 15, 0), (16, 31, 0), (32, 47, 1)]),
            [(0, 31, 0), (32, 47, 1)]
        );
        // The top of the address space does not overflow.
        assert_eq!(
            seg(&[
                (u128::MAX - 255, u128::MAX, 2),
                (u128::MAX - 15, u128::MAX, 3)
            ]),
            [
                (u128::MAX - 255, u128::MAX - 16, 2),
                (u128::MAX - 15, u128::MAX, 3)
            ]
        );
    }

    /// Random laminar families against a brute-force owner per address.
    #[test]
    fn segments_match_a_brute_force_longest_match() {
        let mut seeded = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
        let mut next = move || seeded.next_u64();
        for _ in 0..300 {
            // Prefixes of an 8-bit space.
            let mut ranges = Vec::new();
            for _ in 0..(next() % 12) {
                let len = (next() % 9) as u32;
                let base = (next() % 256) as u128 & !((1u128 << (8 - len)) - 1);
                let hi = base + (1u128 << (8 - len)) - 1;
                if ranges.iter().any(|&(l, h, _)| l == base && h == hi) {
                    continue;
                }
                ranges.push((base, hi, (next() % 3) as u32));
            }
            let mut want: Vec<Option<u32>> = vec![None; 256];
            let mut by_len = ranges.clone();
            by_len.sort_by_key(|&(l, h, _)| std::cmp::Reverse(h - l));
            for &(l, h, o) in &by_len {
                for a in l..=h {
                    want[a as usize] = Some(o);
                }
            }
            let mut got: Vec<Option<u32>> = vec![None; 256];
            let segs = longest_match_segments(ranges.clone());
            for &(l, h, o) in &segs {
                for a in l..=h {
                    assert!(got[a as usize].is_none(), "overlap at {a} in {segs:?}");
                    got[a as usize] = Some(o);
                }
            }
            assert_eq!(got, want, "{ranges:?} -> {segs:?}");
            for w in segs.windows(2) {
                assert!(
                    !(w[0].2 == w[1].2 && w[0].1 + 1 == w[1].0),
                    "unmerged {segs:?}"
                );
            }
        }
    }

    #[test]
    fn long_entity_ids_make_valid_ipset_names() {
        assert_eq!(ipset_name("i-soon", "v4"), "embargo_i_soon_v4");
        let long = ipset_name("integrity-technology-group-beijing", "v6");
        assert!(long.len() <= 31, "{long}");
        assert!(long.starts_with("embargo_integrity_te") && long.ends_with("_v6"));
        assert_ne!(
            long,
            ipset_name("integrity-technology-group-shanghai", "v6")
        );
    }
}
