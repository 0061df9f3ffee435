//! End to end: the real `embargo` binary in a throwaway netns lab, real datagrams through a veth.
//!
//! Needs root and a built `embargo` binary (`cargo build --bin embargo`, or `EMBARGO_BIN`).
//! Every address under test lives on the lab gateway's `lo` (or, for what the gateway itself
//! sends, on the client's); nothing can leave the machine (see `embargo_tests::lab`).

use std::net::IpAddr;

use embargo::config::{Action, Role};
use embargo_tests::{
    lab::{self, Lab, Probe, ProbeResult, counter, outcome},
    policy::{LabEntity, LabPolicy},
};

/// Datagrams per probe.
const COUNT: usize = 3;

/// The netns test policy: documentation and test-net prefixes only. `broken_config_*` below
/// edit its text and count its lines (the builder writes one key a line).
fn test_config() -> String {
    LabPolicy::drop_and_monitor(
        &["203.0.113.0/24", "2001:db8:bad::/48"],
        &["198.51.100.0/24", "2001:db8:ca7::/48"],
        |id, e| {
            e.designation("netns", &format!("NETNS-{id}"))
                .source("netns")
                .guard("test netns")
        },
    )
    .to_string()
}

const DROP_ADDRS: [&str; 4] = [
    "203.0.113.7",
    "203.0.113.250",
    "2001:db8:bad::7",
    "2001:db8:bad:ffff::1",
];
const MONITOR_ADDRS: [&str; 2] = ["198.51.100.9", "2001:db8:ca7::9"];
/// In no prefix; two of them right next to a blocked one.
const ALLOWED_ADDRS: [&str; 4] = [
    "192.0.2.10",
    "203.0.114.1",
    "2001:db8:1::10",
    "2001:db8:bae::1",
];

fn addrs(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn default_config() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/default.toml")
}

fn new_lab() -> Lab {
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    lab
}

/// Sends COUNT datagrams per probe; returns the results keyed like the input.
fn probe(lab: &Lab, probes: &[Probe]) -> Vec<ProbeResult> {
    lab.probe(probes, COUNT).unwrap()
}

fn bytes_of(results: &[ProbeResult]) -> u64 {
    results
        .iter()
        .map(|r| r.probe.frame_len() * r.sent as u64)
        .sum()
}

fn assert_blocked(results: &[ProbeResult]) {
    for r in results {
        assert!(r.blocked(), "expected dropped, got {r:?}");
    }
}

fn assert_delivered(results: &[ProbeResult]) {
    for r in results {
        assert!(r.delivered(), "expected delivered, got {r:?}");
    }
}

fn count_family(results: &[ProbeResult], v4: bool) -> u64 {
    results
        .iter()
        .filter(|r| r.probe.dst.is_ipv4() == v4)
        .map(|r| r.sent as u64)
        .sum()
}

#[test]
fn lab_is_contained_and_removed_on_drop() {
    let lab = new_lab();
    let (cli, gw) = (lab.cli_ns().to_owned(), lab.gw_ns().to_owned());
    let dir = lab.dir().to_owned();
    // Reachable only through the veth, to a local address: delivered without any agent.
    lab.add_remote("114.255.70.20".parse().unwrap()).unwrap();
    assert_delivered(&probe(&lab, &[Probe::to("114.255.70.20".parse().unwrap())]));
    // Sealing twice is harmless and still contained.
    lab.seal().unwrap();
    lab.check_contained().unwrap();
    drop(lab);
    let names = lab::run(std::process::Command::new("ip").args(["netns", "list"])).unwrap();
    assert!(
        !names.contains(&cli) && !names.contains(&gw),
        "namespaces left: {names}"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn inside_role_drops_and_monitors_destinations() {
    let lab = new_lab();
    let config = lab.write_file("test.toml", &test_config()).unwrap();
    let (drop_addrs, monitor_addrs, allowed_addrs) = (
        addrs(&DROP_ADDRS),
        addrs(&MONITOR_ADDRS),
        addrs(&ALLOWED_ADDRS),
    );
    for a in drop_addrs
        .iter()
        .chain(&monitor_addrs)
        .chain(&allowed_addrs)
    {
        lab.add_remote(*a).unwrap();
    }
    let to = |list: &[IpAddr]| list.iter().copied().map(Probe::to).collect::<Vec<_>>();
    let (drop_p, monitor_p, allowed_p) = (to(&drop_addrs), to(&monitor_addrs), to(&allowed_addrs));

    // Baseline without the agent: the lab delivers everything, so a drop below is embargo's.
    assert_delivered(&probe(&lab, &[drop_p.clone(), monitor_p.clone()].concat()));

    let agent = lab.start_agent(&config, Role::Inside).unwrap();
    assert!(lab.xdp_attached().unwrap());
    let dropped = probe(&lab, &drop_p);
    let monitored = probe(&lab, &monitor_p);
    let allowed = probe(&lab, &allowed_p);
    assert_blocked(&dropped);
    assert_delivered(&monitored);
    assert_delivered(&allowed);

    let status = agent.status_json().unwrap();
    assert_eq!(status.interfaces.len(), 1, "{status:?}");
    assert_eq!(status.interfaces[0].name, lab.gw_if());
    assert_eq!(status.interfaces[0].role, "inside");
    assert!(
        ["native", "generic"].contains(&status.interfaces[0].mode.as_str()),
        "{status:?}"
    );
    assert_eq!((status.prefixes_v4, status.prefixes_v6), (2, 2));
    // The running agent names its build (what `embargo --version` prints).
    assert_eq!(status.version, embargo::build_info::LONG);

    let sent = |r: &[ProbeResult]| r.iter().map(|r| r.sent as u64).sum::<u64>();
    assert_eq!(
        counter(&status, "lab-drop", "outbound", "dropped"),
        Some((sent(&dropped), bytes_of(&dropped))),
        "drop entity counters: {status:#?}"
    );
    assert_eq!(
        counter(&status, "lab-monitor", "outbound", "monitored"),
        Some((sent(&monitored), bytes_of(&monitored))),
        "monitor entity counters: {status:#?}"
    );
    assert_eq!(
        counter(&status, "lab-drop", "outbound", "monitored"),
        Some((0, 0))
    );
    assert_eq!(
        counter(&status, "lab-monitor", "outbound", "dropped"),
        Some((0, 0))
    );
    for entity in ["lab-drop", "lab-monitor"] {
        for verdict in ["dropped", "monitored"] {
            assert_eq!(
                counter(&status, entity, "inbound", verdict),
                Some((0, 0)),
                "{entity} inbound {verdict}: {status:#?}"
            );
        }
    }
    let matched = [dropped.clone(), monitored.clone()].concat();
    // Every match applied: none passed as other-direction or without a policy.
    assert_eq!(outcome(&status, "other_direction"), 0);
    assert_eq!(outcome(&status, "no_policy"), 0);
    // Misses include IPv6 multicast noise (MLD), so only a lower bound.
    assert!(outcome(&status, "miss_ipv4") >= count_family(&allowed, true));
    assert!(outcome(&status, "miss_ipv6") >= count_family(&allowed, false));
    assert!(status.packets_seen >= sent(&matched) + sent(&allowed));
    // The human table is there too.
    let text = agent.status_text().unwrap();
    assert!(
        text.contains("lab-drop") && text.contains(lab.gw_if()),
        "{text}"
    );

    agent.stop().unwrap();
}

#[test]
fn outside_role_drops_and_monitors_sources() {
    let lab = new_lab();
    let config = lab.write_file("test.toml", &test_config()).unwrap();
    let blocked_src = addrs(&["203.0.113.7", "2001:db8:bad::7"]);
    let monitored_src = addrs(&["198.51.100.9", "2001:db8:ca7::9"]);
    let allowed_src = addrs(&["192.0.2.10", "2001:db8:1::10"]);
    for a in blocked_src.iter().chain(&monitored_src).chain(&allowed_src) {
        lab.add_client_source(*a).unwrap();
    }
    let from = |list: &[IpAddr]| list.iter().copied().map(Probe::from).collect::<Vec<_>>();
    let (blocked_p, monitored_p, allowed_p) =
        (from(&blocked_src), from(&monitored_src), from(&allowed_src));
    assert_delivered(&probe(&lab, &blocked_p));

    let agent = lab.start_agent(&config, Role::Outside).unwrap();
    let blocked = probe(&lab, &blocked_p);
    let monitored = probe(&lab, &monitored_p);
    let allowed = probe(&lab, &allowed_p);
    assert_blocked(&blocked);
    assert_delivered(&monitored);
    assert_delivered(&allowed);

    let status = agent.status().unwrap();
    assert_eq!(status.interfaces[0].role, "outside");
    let sent = |r: &[ProbeResult]| r.iter().map(|r| r.sent as u64).sum::<u64>();
    assert_eq!(
        counter(&status, "lab-drop", "inbound", "dropped"),
        Some((sent(&blocked), bytes_of(&blocked))),
        "{status:#?}"
    );
    assert_eq!(
        counter(&status, "lab-monitor", "inbound", "monitored"),
        Some((sent(&monitored), bytes_of(&monitored))),
        "{status:#?}"
    );
    for entity in ["lab-drop", "lab-monitor"] {
        for verdict in ["dropped", "monitored"] {
            assert_eq!(
                counter(&status, entity, "outbound", verdict),
                Some((0, 0)),
                "{entity} outbound {verdict}: {status:#?}"
            );
        }
    }
    agent.stop().unwrap();
}

/// Host egress end to end: sockets in the gateway namespace (the host itself) send to client
/// remotes, out of the gateway's veth. With the veth `outside` alone, XDP sees only what it
/// receives, so the blocked destinations are delivered; with `outside:egress` the TC
/// classifier drops them and counts them against the entity, outbound, on that interface.
#[test]
fn outside_egress_drops_and_monitors_what_the_host_sends() {
    let lab = new_lab();
    let config = lab.write_file("test.toml", &test_config()).unwrap();
    let (blocked_dst, monitored_dst, allowed_dst) = (
        addrs(&["203.0.113.7", "2001:db8:bad::7"]),
        addrs(&["198.51.100.9", "2001:db8:ca7::9"]),
        addrs(&["192.0.2.10", "2001:db8:1::10"]),
    );
    for a in blocked_dst.iter().chain(&monitored_dst).chain(&allowed_dst) {
        lab.add_client_remote(*a).unwrap();
    }
    // Routes to the client's side leave no hole in the containment.
    lab.check_contained().unwrap();
    let to = |list: &[IpAddr]| list.iter().copied().map(Probe::to).collect::<Vec<_>>();
    let (blocked_p, monitored_p, allowed_p) =
        (to(&blocked_dst), to(&monitored_dst), to(&allowed_dst));
    let from_gw = |p: &[Probe]| lab.probe_from_gw(p, COUNT).unwrap();
    // Baseline without the agent: everything the host sends arrives.
    assert_delivered(&from_gw(
        &[blocked_p.clone(), monitored_p.clone(), allowed_p.clone()].concat(),
    ));

    // `outside` without egress: the same blocked packets are still delivered, so the drops
    // below are the classifier's.
    let agent = lab.start_agent(&config, Role::Outside).unwrap();
    assert!(lab.egress_programs().unwrap().is_empty());
    assert_delivered(&from_gw(&blocked_p));
    let status = agent.status().unwrap();
    assert!(!status.interfaces[0].egress, "{status:?}");
    assert_eq!(
        counter(&status, "lab-drop", "outbound", "dropped"),
        Some((0, 0))
    );
    agent.stop().unwrap();

    let agent = lab.start_agent_egress(&config).unwrap();
    assert!(lab.xdp_attached().unwrap());
    assert!(
        lab.egress_is_embargo_alone().unwrap(),
        "{:?}",
        lab.egress_programs()
    );
    let blocked = from_gw(&blocked_p);
    let monitored = from_gw(&monitored_p);
    let allowed = from_gw(&allowed_p);
    assert_blocked(&blocked);
    assert_delivered(&monitored);
    assert_delivered(&allowed);
    // Received traffic is still the XDP program's: the outside role matches sources.
    lab.add_remote("203.0.113.9".parse().unwrap()).unwrap();
    assert_delivered(&probe(&lab, &[Probe::to("203.0.113.9".parse().unwrap())]));

    let status = agent.status_json().unwrap();
    assert_eq!(status.interfaces.len(), 1, "{status:?}");
    let iface = &status.interfaces[0];
    assert_eq!(
        (iface.name.as_str(), iface.role.as_str(), iface.egress),
        (lab.gw_if(), "outside", true)
    );
    let sent = |r: &[ProbeResult]| r.iter().map(|r| r.sent as u64).sum::<u64>();
    assert_eq!(
        counter(&status, "lab-drop", "outbound", "dropped"),
        Some((sent(&blocked), bytes_of(&blocked))),
        "{status:#?}"
    );
    assert_eq!(
        counter(&status, "lab-monitor", "outbound", "monitored"),
        Some((sent(&monitored), bytes_of(&monitored))),
        "{status:#?}"
    );
    for entity in ["lab-drop", "lab-monitor"] {
        for verdict in ["dropped", "monitored"] {
            assert_eq!(
                counter(&status, entity, "inbound", verdict),
                Some((0, 0)),
                "{entity} inbound {verdict}: {status:#?}"
            );
        }
    }
    assert_eq!(outcome(&status, "egress_forwarded"), 0);
    assert_eq!(outcome(&status, "other_direction"), 0);
    // The host's own packets on that one interface: the unlisted ones are misses (plus
    // whatever IPv6 multicast the gateway sends), counted in the same stats as XDP's.
    assert!(outcome(&status, "miss_ipv4") >= count_family(&allowed, true));
    assert!(outcome(&status, "miss_ipv6") >= count_family(&allowed, false));
    // Per interface: the metrics carry the interface label.
    let (code, body) = lab
        .http_get("127.0.0.1:9610".parse().unwrap(), "/metrics")
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let series = format!(
        "embargo_packets_total{{direction=\"outbound\",entity=\"lab-drop\",evidence=\"netns\",interface=\"{}\",verdict=\"dropped\"}} {}",
        lab.gw_if(),
        sent(&blocked)
    );
    assert!(
        body.lines().any(|l| l == series),
        "no `{series}` in:\n{body}"
    );
    let text = agent.status_text().unwrap();
    assert!(text.contains("EGRESS"), "{text}");

    agent.stop().unwrap(); // checks no XDP and no TC program is left
    assert!(
        !lab.has_clsact().unwrap(),
        "no qdisc was needed, none is left"
    );
    assert_delivered(&from_gw(&blocked_p));
    lab.check_contained().unwrap();
}

#[test]
fn default_config_blocks_both_designated_entities() {
    let lab = new_lab();
    let config = default_config();
    let integrity: Vec<IpAddr> = addrs(&["114.255.70.20", "5.188.33.135"]);
    let isoon: Vec<IpAddr> = addrs(&["74.120.172.10", "8.218.67.52"]);
    // 114.255.70.21 sits next to a listed /32; 198.18.9.9 is benchmarking space.
    let allowed: Vec<IpAddr> = addrs(&["192.0.2.10", "114.255.70.21", "198.18.9.9"]);
    for a in integrity.iter().chain(&isoon).chain(&allowed) {
        lab.add_remote(*a).unwrap();
    }
    let to = |list: &[IpAddr]| list.iter().copied().map(Probe::to).collect::<Vec<_>>();
    assert_delivered(&probe(&lab, &[to(&integrity), to(&isoon)].concat()));

    let agent = lab.start_agent(&config, Role::Inside).unwrap();
    let integrity_r = probe(&lab, &to(&integrity));
    let isoon_r = probe(&lab, &to(&isoon));
    let allowed_r = probe(&lab, &to(&allowed));
    assert_blocked(&integrity_r);
    assert_blocked(&isoon_r);
    assert_delivered(&allowed_r);

    let status = agent.status().unwrap();
    let ids: Vec<&str> = status.entities.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["i-soon", "integrity-tech"]);
    let (_, compiled) = embargo::compile_file(&config, embargo::today()).unwrap();
    assert_eq!(status.prefixes_v4, compiled.v4().len());
    assert_eq!(status.prefixes_v6, 0);
    let sent = |r: &[ProbeResult]| r.iter().map(|r| r.sent as u64).sum::<u64>();
    assert_eq!(
        counter(&status, "integrity-tech", "outbound", "dropped"),
        Some((sent(&integrity_r), bytes_of(&integrity_r))),
        "{status:#?}"
    );
    assert_eq!(
        counter(&status, "i-soon", "outbound", "dropped"),
        Some((sent(&isoon_r), bytes_of(&isoon_r))),
        "{status:#?}"
    );
    agent.stop().unwrap();
}

#[test]
fn sigterm_detaches_cleanly() {
    let lab = new_lab();
    let config = lab.write_file("test.toml", &test_config()).unwrap();
    let blocked: IpAddr = "203.0.113.7".parse().unwrap();
    lab.add_remote(blocked).unwrap();
    assert!(!lab.xdp_attached().unwrap());

    let agent = lab.start_agent(&config, Role::Inside).unwrap();
    assert!(lab.xdp_attached().unwrap());
    assert_blocked(&probe(&lab, &[Probe::to(blocked)]));
    let socket = agent.socket().to_owned();
    let log = agent.stop().unwrap(); // checks exit 0, no XDP left, socket removed
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("detached"), "{log}");

    assert!(!lab.xdp_attached().unwrap());
    assert!(!socket.exists());
    assert!(embargo::observe::status::query(&socket).is_err());
    // With the program gone, the same traffic flows again.
    assert_delivered(&probe(&lab, &[Probe::to(blocked)]));
}

/// Runs `embargo run` in the lab with `config_text`; asserts it is refused with exit 64 and an
/// error naming `bad.toml:<line>:`, and that nothing was attached.
fn assert_refused(config_text: &str, line: usize) {
    let lab = new_lab();
    let config = lab.write_file("bad.toml", config_text).unwrap();
    let socket = lab.control_socket();
    let iface = format!("{}:inside", lab.gw_if());
    let out = lab
        .embargo_in_gw(&[
            "run",
            "--config",
            &config.display().to_string(),
            "--interface",
            &iface,
            "--control-socket",
            &socket.display().to_string(),
            "--audit-log",
            &lab.audit_log().display().to_string(),
            "--events-log",
            &lab.events_log().display().to_string(),
        ])
        .unwrap()
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "stderr: {stderr}");
    let at = format!("{}:{line}:", config.display());
    assert!(stderr.contains(&at), "expected `{at}` in: {stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(!lab.xdp_attached().unwrap());
    assert!(!socket.exists());
}

#[test]
fn broken_config_unknown_field_exits_64_with_location() {
    // The first entity's first line gains an unknown field.
    let text = test_config().replacen(
        "id = \"lab-drop\"",
        "colour = \"red\"\nid = \"lab-drop\"",
        1,
    );
    let line = 1 + text.lines().position(|l| l == "colour = \"red\"").unwrap();
    assert_refused(&text, line);
}

#[test]
fn broken_config_bad_prefix_exits_64_with_location() {
    let text = test_config().replace("198.51.100.0/24", "198.51.100.1/24");
    let line = 1 + text
        .lines()
        .position(|l| l.contains("198.51.100.1/24"))
        .unwrap();
    assert_refused(&text, line);
}

/// A one-entity (`lab-drop`) configuration listing `prefixes`.
fn lab_drop_config(prefixes: &[&str]) -> String {
    lab_drop_config_with(prefixes, 0)
}

/// [`lab_drop_config`] with `extra` more entities (a /24 each in 198.18.0.0/15), so a policy
/// can outgrow the 64 entities the first generation's maps hold.
fn lab_drop_config_with(prefixes: &[&str], extra: usize) -> String {
    let mut policy = LabPolicy::new().entity(
        LabEntity::new("lab-drop", Action::Drop, prefixes)
            .name("Lab Drop")
            .designation("lab", "L-1")
            .source("netns")
            .guard("documentation ranges in a test lab"),
    );
    for i in 0..extra {
        policy = policy.entity(
            LabEntity::new(
                &format!("lab-extra-{i}"),
                Action::Drop,
                &[&format!("198.18.{i}.0/24")],
            )
            .name("Lab Extra")
            .designation("lab", &format!("L-x{i}"))
            .source("netns")
            .guard("documentation ranges in a test lab"),
        );
    }
    policy.to_string()
}

/// Drops traced to evidence (issue 14): one entity with two network groups, one named and one
/// called by its evidence source, each covering other addresses. The agent counts each drop
/// against the group whose prefix matched: `status` shows the groups under the entity (their
/// counters sum to the entity's), and `/metrics` has one `embargo_packets_total` series per
/// group, labelled `evidence` with the group's name or source.
#[test]
fn drops_are_counted_per_evidence_group_in_status_and_metrics() {
    let lab = new_lab();
    let named: IpAddr = "203.0.113.7".parse().unwrap();
    let unnamed: [IpAddr; 2] = [
        "198.51.100.9".parse().unwrap(),
        "2001:db8:bad::7".parse().unwrap(),
    ];
    for a in std::iter::once(named).chain(unnamed) {
        lab.add_remote(a).unwrap();
    }
    let config = "enforce = [\"TEST\"]\n[[entities]]\nid = \"lab-drop\"\nname = \"Lab Drop\"\naction = \"drop\"\n\
         designations = [{ authority = \"TEST\", regime = \"lab\", reference = \"L-1\", listed_on = 2025-01-01, source = \"netns\" }]\n\
         [[entities.networks]]\nname = \"cisa-aa24\"\nprefixes = [\"203.0.113.0/24\"]\nguard_override = \"documentation range in a test lab\"\n\
         evidence = { kind = \"advisory\", source = \"https://cisa.example/aa24\", retrieved = 2026-01-01, confidence = \"high\" }\n\
         [[entities.networks]]\nprefixes = [\"198.51.100.0/24\", \"2001:db8:bad::/48\"]\nguard_override = \"documentation range in a test lab\"\n\
         evidence = { kind = \"registry\", source = \"whois lab-drop\", retrieved = 2026-01-01, confidence = \"high\" }\n";
    let path = lab.write_file("groups.toml", config).unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let named_r = probe(&lab, &[Probe::to(named)]);
    let unnamed_r = probe(&lab, &unnamed.map(Probe::to));
    assert_blocked(&named_r);
    assert_blocked(&unnamed_r);
    let sent = |r: &[ProbeResult]| r.iter().map(|r| r.sent as u64).sum::<u64>();

    let status = agent.status_json().unwrap();
    let e = status
        .entities
        .iter()
        .find(|e| e.id == "lab-drop")
        .expect("lab-drop in status");
    let dropped = |rows: &[embargo::observe::status::CounterRow]| {
        rows.iter()
            .find(|c| c.direction == "outbound" && c.verdict == "dropped")
            .map(|c| (c.packets, c.bytes))
    };
    // (evidence, source, outbound dropped (packets, bytes)) per group.
    type GroupRow<'a> = (&'a str, &'a str, Option<(u64, u64)>);
    let groups: Vec<GroupRow> = e
        .groups
        .iter()
        .map(|g| (g.evidence.as_str(), g.source.as_str(), dropped(&g.counters)))
        .collect();
    assert_eq!(
        groups,
        [
            (
                "cisa-aa24",
                "https://cisa.example/aa24",
                Some((sent(&named_r), bytes_of(&named_r)))
            ),
            (
                "whois lab-drop",
                "whois lab-drop",
                Some((sent(&unnamed_r), bytes_of(&unnamed_r)))
            ),
        ],
        "{status:#?}"
    );
    assert_eq!(
        dropped(&e.counters),
        Some((
            sent(&named_r) + sent(&unnamed_r),
            bytes_of(&named_r) + bytes_of(&unnamed_r)
        )),
        "the entity's counters are its groups' sum"
    );
    let text = agent.status_text().unwrap();
    assert!(
        text.contains("evidence cisa-aa24") && text.contains("evidence whois lab-drop"),
        "{text}"
    );

    let (code, body) = lab
        .http_get("127.0.0.1:9610".parse().unwrap(), "/metrics")
        .unwrap();
    assert_eq!(code, 200, "{body}");
    for (evidence, n) in [
        ("cisa-aa24", sent(&named_r)),
        ("whois lab-drop", sent(&unnamed_r)),
    ] {
        let series = format!(
            "embargo_packets_total{{direction=\"outbound\",entity=\"lab-drop\",evidence=\"{evidence}\",interface=\"{}\",verdict=\"dropped\"}} {n}",
            lab.gw_if(),
        );
        assert!(
            body.lines().any(|l| l == series),
            "no `{series}` in:\n{body}"
        );
    }
    agent.stop().unwrap();
}

/// Dates on time: evidence that expires a few seconds ahead stops counting at that instant,
/// and evidence that counts from then starts, with no file change and no SIGHUP: the agent
/// reloads on its own (in place, counted, audited), and `status` shows the change scheduled
/// before it and none after.
#[test]
fn evidence_dates_take_effect_on_time_without_a_reload_signal() {
    use chrono::{SecondsFormat, Utc};
    let lab = new_lab();
    let old: IpAddr = "203.0.113.7".parse().unwrap();
    let new: IpAddr = "198.51.100.9".parse().unwrap();
    for x in [old, new] {
        lab.add_remote(x).unwrap();
    }
    let at = Utc::now() + chrono::Duration::seconds(12);
    let stamp = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let at = chrono::DateTime::parse_from_rfc3339(&stamp)
        .unwrap()
        .to_utc();
    let config = format!(
        "enforce = [\"TEST\"]\n[[entities]]\nid = \"lab-drop\"\nname = \"Lab Drop\"\naction = \"drop\"\n\
         designations = [{{ authority = \"TEST\", regime = \"lab\", reference = \"L-1\", listed_on = 2025-01-01, source = \"netns\" }}]\n\
         [[entities.networks]]\nprefixes = [\"203.0.113.0/24\"]\nguard_override = \"documentation range in a test lab\"\n\
         evidence = {{ kind = \"advisory\", source = \"old advisory\", retrieved = 2026-01-01, confidence = \"high\", expires = {stamp} }}\n\
         [[entities.networks]]\nprefixes = [\"198.51.100.0/24\"]\nguard_override = \"documentation range in a test lab\"\n\
         evidence = {{ kind = \"advisory\", source = \"new advisory\", retrieved = 2026-01-01, confidence = \"high\", valid_from = \"{stamp}\" }}\n"
    );
    let path = lab.write_file("dates.toml", &config).unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let s = agent.status_json().unwrap();
    let next = s.next_change.clone().expect("a change is scheduled");
    assert_eq!(next.at, at, "{next:?}");
    assert!(
        next.what
            .contains("entity `lab-drop` group 1: evidence expires"),
        "{next:?}"
    );
    let text = agent.status_text().unwrap();
    assert!(
        text.contains(&format!("next change: {stamp} (entity `lab-drop` group 1")),
        "{text}"
    );
    assert!(
        Utc::now() + chrono::Duration::seconds(2) < at,
        "the agent took too long to start for the test to mean anything"
    );
    // Before the instant: the old evidence counts, the new does not yet.
    assert_blocked(&probe(&lab, &[Probe::to(old)]));
    assert_delivered(&probe(&lab, &[Probe::to(new)]));
    assert_eq!(agent.status().unwrap().reloads.succeeded, 1);
    // After it: one reload by the agent itself, in place, and the other way round.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let s = loop {
        let s = agent.status().unwrap();
        if s.reloads.succeeded >= 2 {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload at {stamp}: {:#?}\n{}",
            s.reloads,
            agent.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(Utc::now() >= at, "reloaded before the date");
    assert_eq!(s.reloads.succeeded, 2, "{:#?}", s.reloads);
    assert_eq!(s.reloads.failed, 0, "{:#?}", s.reloads);
    assert_eq!(s.reloads.last_kind, "in_place");
    assert_eq!(s.next_change, None, "nothing left to schedule");
    assert_delivered(&probe(&lab, &[Probe::to(old)]));
    assert_blocked(&probe(&lab, &[Probe::to(new)]));
    let log = agent.log();
    assert!(log.contains("date reached"), "{log}");
    assert!(
        agent
            .status_text()
            .unwrap()
            .contains("next change: none scheduled")
    );
    // Audited: the initial policy and the one the date applied.
    let out = std::process::Command::new(lab::embargo_bin().unwrap())
        .args(["audit", "verify", "--log"])
        .arg(lab.audit_log())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": 2 records, chain intact"), "{stdout}");
}

/// Live operation with the real agent: SIGHUP and file-change reloads apply in place, a broken
/// configuration is refused with the old policy in force, a change that needs a new data-plane
/// generation switches programs without detaching, and a map tampered with from another
/// process is found and repaired by `embargo status --verify`.
#[test]
fn reloads_and_attestation() {
    let lab = new_lab();
    let a: IpAddr = "203.0.113.7".parse().unwrap();
    let b: IpAddr = "198.51.100.9".parse().unwrap();
    let c: IpAddr = "2001:db8:bad::7".parse().unwrap();
    for x in [a, b, c] {
        lab.add_remote(x).unwrap();
    }
    let path = lab
        .write_file("live.toml", &lab_drop_config(&["203.0.113.0/24"]))
        .unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    assert_blocked(&probe(&lab, &[Probe::to(a)]));
    assert_delivered(&probe(&lab, &[Probe::to(b)]));

    let wait_for = |what: &str, ok: &dyn Fn(&embargo::observe::status::Status) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let s = agent.status().unwrap();
            if ok(&s) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}\n{}",
                s.reloads,
                agent.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let hup = || {
        // SAFETY: signalling our own child process.
        assert_eq!(unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) }, 0);
    };

    // SIGHUP: b becomes blocked, in place.
    std::fs::write(
        &path,
        lab_drop_config(&["203.0.113.0/24", "198.51.100.0/24"]),
    )
    .unwrap();
    hup();
    let s = wait_for("the SIGHUP reload", &|s| s.reloads.succeeded >= 2);
    assert_eq!(s.reloads.last_kind, "in_place");
    assert_blocked(&probe(&lab, &[Probe::to(a), Probe::to(b)]));

    // A changed file alone: a is delivered again.
    std::fs::write(&path, lab_drop_config(&["198.51.100.0/24"])).unwrap();
    let s = wait_for("the file-change reload", &|s| s.reloads.succeeded >= 3);
    assert_eq!(s.reloads.last_kind, "in_place");
    assert_delivered(&probe(&lab, &[Probe::to(a)]));
    assert_blocked(&probe(&lab, &[Probe::to(b)]));

    // A broken file: refused, the policy stays, the error names the place.
    std::fs::write(&path, "enforce = [\"TEST\"\n").unwrap();
    hup();
    let s = wait_for("the failed reload", &|s| s.reloads.failed >= 1);
    let err = s.reloads.last_error.clone().unwrap();
    // toml 1.x places an unclosed array at the end of its line (line 1, column 18).
    assert!(err.contains(&format!("{}:1:18:", path.display())), "{err}");
    assert_blocked(&probe(&lab, &[Probe::to(b)]));

    // The first IPv6 prefix and 80 more entities than the first generation's maps hold: a new
    // generation takes over the interface without detaching, and counters carry over.
    let dropped_before = counter(&s, "lab-drop", "outbound", "dropped").unwrap().0;
    std::fs::write(
        &path,
        lab_drop_config_with(&["198.51.100.0/24", "2001:db8:bad::/48"], 80),
    )
    .unwrap();
    hup();
    let s = wait_for("the new generation", &|s| s.reloads.succeeded >= 4);
    assert_eq!(s.reloads.last_kind, "new_generation", "{:#?}", s.reloads);
    assert!(lab.xdp_attached().unwrap());
    assert!(counter(&s, "lab-drop", "outbound", "dropped").unwrap().0 >= dropped_before);
    assert_blocked(&probe(&lab, &[Probe::to(b), Probe::to(c)]));

    // Tamper from another process: clear b's direct entry (its /16) in the agent's IPv4 trie.
    let map = aya::maps::loaded_maps()
        .filter_map(Result::ok)
        .filter(|m| m.name_as_str() == Some(embargo_abi::maps::V4_TRIE))
        .max_by_key(|m| m.id())
        .expect("the agent's IPv4 trie");
    let data = aya::maps::MapData::from_id(map.id()).unwrap();
    let mut trie: aya::maps::Array<_, embargo_abi::trie::Chunk> =
        aya::maps::Array::try_from(aya::maps::Map::Array(data)).unwrap();
    let root = u32::from(match b {
        IpAddr::V4(v) => v,
        IpAddr::V6(_) => unreachable!(),
    }) >> (32 - embargo_abi::trie::DIRECT_BITS);
    let (chunk, lane) = (root / 16, (root % 16) as usize);
    let mut value = trie.get(&chunk, 0).unwrap();
    assert_ne!(value[lane], 0, "b is listed");
    value[lane] = 0;
    trie.set(chunk, value, 0).unwrap();
    assert_delivered(&probe(&lab, &[Probe::to(b)]));

    let out = lab
        .embargo_in_gw(&[
            "status",
            "--verify",
            "--control-socket",
            &agent.socket().display().to_string(),
        ])
        .unwrap()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("attestation: 1 drifted entries (IPv4 trie 1"),
        "{text}"
    );
    assert_blocked(&probe(&lab, &[Probe::to(b)]));
    assert_eq!(agent.status().unwrap().drift_entries, 1);
    // Clean now.
    let out = lab
        .embargo_in_gw(&[
            "status",
            "--verify",
            "--control-socket",
            &agent.socket().display().to_string(),
        ])
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    agent.stop().unwrap();
}

/// Restart without a gap: after `kill -9` the pinned attachment keeps enforcing; a new agent
/// takes it over atomically while traffic flows (no blocked datagram gets through, no allowed
/// one is lost) and applies its new policy; `--keep-attached` leaves enforcement in place on
/// SIGTERM; `embargo detach` removes it.
#[test]
fn restart_without_a_gap() {
    let lab = new_lab();
    let a: IpAddr = "203.0.113.7".parse().unwrap();
    let b: IpAddr = "198.51.100.9".parse().unwrap();
    let ok: IpAddr = "192.0.2.10".parse().unwrap();
    for x in [a, b, ok] {
        lab.add_remote(x).unwrap();
    }
    let path = lab
        .write_file("pin.toml", &lab_drop_config(&["203.0.113.0/24"]))
        .unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let pin = lab.pin_dir().join(format!("link-{}", lab.gw_if()));
    assert!(pin.exists(), "the XDP link is pinned at {}", pin.display());
    assert_blocked(&probe(&lab, &[Probe::to(a)]));

    let stop = std::sync::atomic::AtomicBool::new(false);
    let (leaked, lost, rounds) = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let (mut leaked, mut lost, mut rounds) = (0, 0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = lab.probe(&[Probe::to(a), Probe::to(ok)], 3).unwrap();
                leaked += r[0].received;
                lost += r[1].sent - r[1].received;
                rounds += 1;
            }
            (leaked, lost, rounds)
        });
        std::thread::sleep(std::time::Duration::from_millis(700));
        let log = agent.kill9().unwrap();
        assert!(!log.contains("detached"), "{log}");
        // Nobody is running: the pinned link still enforces.
        std::thread::sleep(std::time::Duration::from_millis(1000));
        assert!(lab.xdp_attached().unwrap());
        std::fs::write(
            &path,
            lab_drop_config(&["203.0.113.0/24", "198.51.100.0/24"]),
        )
        .unwrap();
        let agent = lab.start_agent(&path, Role::Inside).unwrap();
        let status = agent.status().unwrap();
        assert_eq!(status.interfaces[0].mode, "adopted", "{status:#?}");
        std::thread::sleep(std::time::Duration::from_millis(700));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let result = sender.join().unwrap();
        // The new policy is in force: b is blocked too.
        assert_blocked(&probe(&lab, &[Probe::to(b)]));
        // --keep-attached is not set: a normal stop detaches and removes the pin.
        agent.stop().unwrap();
        assert!(!pin.exists());
        result
    });
    assert!(rounds >= 5, "too few rounds of traffic: {rounds}");
    assert_eq!(
        leaked, 0,
        "blocked datagrams got through during the restart"
    );
    assert_eq!(lost, 0, "allowed datagrams were lost during the restart");
    assert_delivered(&probe(&lab, &[Probe::to(a)]));

    // --keep-attached: enforcement outlives a clean stop; `embargo detach` ends it.
    let agent = lab
        .start_agent_with(&path, Role::Inside, &["--keep-attached"])
        .unwrap();
    let socket = agent.socket().to_owned();
    let log = agent.terminate().unwrap();
    assert!(log.contains("leaving the pinned links attached"), "{log}");
    assert!(lab.xdp_attached().unwrap() && pin.exists());
    assert_blocked(&probe(&lab, &[Probe::to(a), Probe::to(b)]));
    let out = lab
        .embargo_in_gw(&[
            "detach",
            "--pin-dir",
            &lab.pin_dir().display().to_string(),
            "--state-dir",
            &lab.state_dir().display().to_string(),
            "--control-socket",
            &socket.display().to_string(),
        ])
        .unwrap()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("detached {}", lab.gw_if())));
    assert!(!lab.xdp_attached().unwrap());
    assert!(!lab.pin_dir().exists());
    assert_delivered(&probe(&lab, &[Probe::to(a), Probe::to(b)]));
}
