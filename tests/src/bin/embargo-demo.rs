//! `cargo xtask demo`: the real `embargo` agent, real packets, in a throwaway network-namespace
//! lab that nothing can leave.
//!
//! Usage: `embargo-demo [CONFIG]` (or `EMBARGO_CONFIG`; default `config/default.toml` relative to
//! the current directory). Needs root and a built `embargo` binary (or `EMBARGO_BIN`). Exits
//! non-zero if a blocked address was delivered, an allowed one was dropped, or the counters
//! disagree with what was sent.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use embargo::{
    config::{Action, DirectionSet, Role},
    policy::Policy,
};
use embargo_tests::lab::{self, Lab, Probe};

/// Datagrams per address.
const COUNT: usize = 3;
/// Addresses sampled from each entity's prefixes.
const PER_ENTITY: usize = 3;
/// Addresses no sanctions list should hold: documentation and benchmarking space.
const ALLOWED: [&str; 3] = ["192.0.2.10", "198.18.9.9", "2001:db8::10"];

fn main() -> ExitCode {
    match demo() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One address in the demo: where it is listed and what should happen to it.
struct Row {
    addr: IpAddr,
    /// Index into the policy's entities.
    entity: Option<usize>,
    expect_delivered: bool,
}

fn demo() -> Result<bool> {
    let config = config_path();
    if !config.is_file() {
        bail!(
            "no configuration at {}: run from the workspace root, pass the path as the first \
             argument, or set EMBARGO_CONFIG",
            config.display()
        );
    }
    let (_, compiled) = embargo::compile_file(&config, embargo::today())?;
    let policy = Policy::from(&compiled);
    let rows = pick_addresses(&policy)?;

    println!("Embargo demo: the real agent and real packets, in a throwaway lab.\n");
    let lab = Lab::new().context("building the lab")?;
    lab.check_contained()?;
    println!(
        "Lab: namespaces {} (client) and {} (gateway), joined by veth {} <-> {}.",
        lab.cli_ns(),
        lab.gw_ns(),
        lab.cli_if(),
        lab.gw_if()
    );
    println!(
        "     Every address below lives on the gateway's loopback. Forwarding is off and both\n     \
         namespaces have blackhole default routes: nothing can leave this machine.\n"
    );
    for row in &rows {
        lab.add_remote(row.addr)?;
    }

    let mut ok = true;
    let gw_name = lab.gw_if().to_owned();
    let (cli_ns, gw_ns) = (lab.cli_ns().to_owned(), lab.gw_ns().to_owned());
    {
        println!(
            "$ embargo run --config {} --interface {}:inside --control-socket {} --audit-log {} \
             --events-log {}",
            config.display(),
            lab.gw_if(),
            lab.control_socket().display(),
            lab.audit_log().display(),
            lab.events_log().display()
        );
        let agent = lab.start_agent(&config, Role::Inside)?;
        let status = agent.status()?;
        let mode = status
            .interfaces
            .first()
            .map_or("?", |i| i.mode.as_str())
            .to_owned();
        println!(
            "Attached to {} ({mode} XDP), role inside: destinations are matched. Policy: {} \
             entities, {} IPv4 + {} IPv6 prefixes.\n",
            lab.gw_if(),
            status.entities.len(),
            status.prefixes_v4,
            status.prefixes_v6
        );

        println!("Sending {COUNT} UDP datagrams from the client to each address:\n");
        let probes: Vec<Probe> = rows.iter().map(|r| Probe::to(r.addr)).collect();
        let results = lab.probe(&probes, COUNT)?;
        println!(
            "{:<18} {:<20} {:<8} {:<14} CHECK",
            "ADDRESS", "ENTITY", "ACTION", "DELIVERED"
        );
        for (row, r) in rows.iter().zip(&results) {
            let (entity, action) = match row.entity {
                Some(i) => (
                    policy.entities[i].id.as_str(),
                    action_label(policy.entities[i].action),
                ),
                None => ("not listed", "-"),
            };
            let delivered = if r.delivered() {
                "yes"
            } else if r.blocked() {
                "no"
            } else {
                "partly"
            };
            let good = if row.expect_delivered {
                r.delivered()
            } else {
                r.blocked()
            };
            ok &= good;
            println!(
                "{:<18} {:<20} {:<8} {:<14} {}",
                row.addr.to_string(),
                entity,
                action,
                format!("{delivered} ({}/{})", r.received, r.sent),
                if good {
                    "ok".to_owned()
                } else {
                    format!(
                        "UNEXPECTED: should have been {}",
                        if row.expect_delivered {
                            "delivered"
                        } else {
                            "dropped"
                        }
                    )
                }
            );
        }

        // The agent's counters must account for exactly what was sent to each entity.
        let status = agent.status()?;
        for (i, e) in policy.entities.iter().enumerate() {
            let sent = rows.iter().filter(|r| r.entity == Some(i)).count() * COUNT;
            if sent == 0 || !covers_outbound(e.direction) {
                continue;
            }
            let verdict = match e.action {
                Action::Drop => "dropped",
                Action::Monitor => "monitored",
            };
            let counted = lab::counter(&status, &e.id, "outbound", verdict).map_or(0, |c| c.0);
            if counted != sent as u64 {
                ok = false;
                println!(
                    "UNEXPECTED: {} counts {counted} outbound {verdict} packets, {sent} were sent",
                    e.id
                );
            }
        }

        println!(
            "\n$ embargo status --control-socket {}",
            agent.socket().display()
        );
        print!("{}", agent.status_text()?);

        agent.stop().context("stopping the agent")?;
        println!("\nStopped the agent with SIGTERM: it exited 0 and detached XDP from {gw_name}.");
    }
    drop(lab);
    let left = lab::run(std::process::Command::new("ip").args(["netns", "list"]))?;
    if left.contains(&cli_ns) || left.contains(&gw_ns) {
        bail!("the lab's namespaces are still there:\n{left}");
    }
    println!("Lab removed: namespaces {cli_ns} and {gw_ns} deleted (the veth went with them).\n");
    if ok {
        println!(
            "Every address behaved as the policy says: listed ones dropped, the rest delivered."
        );
    } else {
        println!("Something did not behave as the policy says (see UNEXPECTED above).");
    }
    Ok(ok)
}

/// The command line (`--help`).
#[derive(Parser)]
#[command(
    name = "embargo-demo",
    about = "The real embargo agent, real packets, in a throwaway network-namespace lab \
             (needs root and a built embargo binary, or EMBARGO_BIN)"
)]
struct Cli {
    /// The configuration [default: $EMBARGO_CONFIG, else config/default.toml]
    config: Option<PathBuf>,
}

fn config_path() -> PathBuf {
    Cli::parse()
        .config
        .or_else(|| std::env::var_os("EMBARGO_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| Path::new("config/default.toml").to_owned())
}

/// A few addresses from each entity's prefixes, then the allowed ones, each with the entity that
/// lists it (most specific prefix, computed here independently of the data plane).
fn pick_addresses(policy: &Policy) -> Result<Vec<Row>> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    for index in 0..policy.entities.len() as u32 {
        // A usable host inside each prefix: its first host when there is room for one.
        let v4 = policy.v4.iter().filter(|(_, e)| *e == index).map(|(n, _)| {
            let base = u32::from(n.network());
            IpAddr::V4(if n.prefix() < 31 { base + 1 } else { base }.into())
        });
        let v6 = policy.v6.iter().filter(|(_, e)| *e == index).map(|(n, _)| {
            let base = u128::from(n.network());
            IpAddr::V6(if n.prefix() < 127 { base + 1 } else { base }.into())
        });
        addrs.extend(v4.chain(v6).take(PER_ENTITY));
    }
    for a in ALLOWED {
        addrs.push(a.parse().context("a built-in address")?);
    }
    addrs.dedup();
    Ok(addrs
        .into_iter()
        .map(|addr| {
            let entity = listed_by(policy, addr);
            let expect_delivered = entity.is_none_or(|i| {
                let e = &policy.entities[i];
                e.action == Action::Monitor || !covers_outbound(e.direction)
            });
            Row {
                addr,
                entity,
                expect_delivered,
            }
        })
        .collect())
}

/// The entity whose most specific prefix contains `addr`.
fn listed_by(policy: &Policy, addr: IpAddr) -> Option<usize> {
    let (entity, _) = match addr {
        IpAddr::V4(a) => policy
            .v4
            .iter()
            .filter(|(n, _)| n.contains(a))
            .map(|(n, e)| (*e, n.prefix()))
            .max_by_key(|(_, len)| *len)?,
        IpAddr::V6(a) => policy
            .v6
            .iter()
            .filter(|(n, _)| n.contains(a))
            .map(|(n, e)| (*e, n.prefix()))
            .max_by_key(|(_, len)| *len)?,
    };
    Some(entity as usize)
}

fn covers_outbound(d: DirectionSet) -> bool {
    matches!(d, DirectionSet::Outbound | DirectionSet::Both)
}

fn action_label(a: Action) -> &'static str {
    match a {
        Action::Drop => "drop",
        Action::Monitor => "monitor",
    }
}
