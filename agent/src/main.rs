//! The `embargo` command line.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use embargo::{
    config::{Confidence, ConfigError, EvidenceKind, Interface, Role, XdpMode},
    observe::{audit, status},
    policy::{compile::Compiled, explain, plan, resolve::SourceStatus},
    run::{self, RunError, RunOptions},
};

/// Prints to standard output through [`embargo::cli::output`]: a closed pipe ends the printing
/// quietly and the command keeps its exit code.
macro_rules! out {
    ($($arg:tt)*) => { embargo::cli::output::stdout(format_args!($($arg)*)) };
}

/// [`out!`] with a newline.
macro_rules! outln {
    () => { embargo::cli::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { embargo::cli::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to standard error; never panics.
macro_rules! errln {
    ($($arg:tt)*) => { embargo::cli::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Where XDP links are pinned unless --pin-dir says otherwise.
const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/embargo";

/// Where the configuration lives unless --config says otherwise.
const DEFAULT_CONFIG: &str = "/etc/embargo/embargo.toml";

#[derive(Parser)]
#[command(
    name = "embargo",
    version,
    about = "Sanctions-aware egress firewall agent (XDP)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the policy, attach to the interfaces and enforce until SIGINT or SIGTERM.
    Run {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// NAME:ROLE[:MODE][:egress] (role inside|outside, mode auto|native|generic; `egress`,
        /// outside only, also matches the destinations of packets the host sends out of it);
        /// adds to or overrides the config's interfaces. Repeatable.
        #[arg(long = "interface", short, value_parser = parse_interface)]
        interfaces: Vec<Interface>,
        /// Control socket `embargo status` talks to.
        #[arg(long, default_value = status::DEFAULT_SOCKET)]
        control_socket: PathBuf,
        /// Hash-chained log of every applied policy (see `embargo audit verify`).
        #[arg(long, default_value = audit::DEFAULT_LOG)]
        audit_log: PathBuf,
        /// ADDRESS:PORT for /metrics, /healthz and /readyz; overrides the config's
        /// `[metrics] listen` (default 127.0.0.1:9610).
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
        /// JSON-lines file for drop and monitor events; overrides the config's `[events] path`
        /// and turns events on (`output = "file"`; events are off by default).
        #[arg(long, value_name = "PATH")]
        events_log: Option<PathBuf>,
        /// bpffs folder where the XDP links are pinned, so enforcement survives the agent (a
        /// restarted agent takes them over without detaching).
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// Do not pin: enforcement ends with the agent.
        #[arg(long, conflicts_with = "keep_attached")]
        no_pin: bool,
        /// On SIGINT/SIGTERM leave the pinned links attached (enforcement continues with the
        /// loaded policy) instead of detaching; the next agent adopts them.
        #[arg(long)]
        keep_attached: bool,
        /// Folder (created 0700) of the state file describing the pinned maps, so a restarted
        /// agent reuses them and applies its policy as a diff.
        #[arg(long, default_value = embargo::dataplane::state::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Remove every pinned XDP link (enforcement stops) after the agent has exited.
    Detach {
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// The agent's state folder: its state file is removed too.
        #[arg(long, default_value = embargo::dataplane::state::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Control socket of the agent, checked to be gone first.
        #[arg(long, default_value = status::DEFAULT_SOCKET)]
        control_socket: PathBuf,
    },
    /// Work with the policy audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Validate and compile the configuration; print what it enforces and what it left out.
    Check {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch every remote source once into its cache, as `run` does at start, and say how
    /// each went. Exits 1 if any fetch failed (its last-known-good copy is kept).
    Fetch {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show what applying the configuration would change against what the agent has loaded.
    Plan {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Control socket of the running agent.
        #[arg(long, default_value = status::DEFAULT_SOCKET)]
        control_socket: PathBuf,
        /// Longest list printed per kind of change.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Explain why an address is blocked, monitored, allowed or not listed.
    Why {
        address: IpAddr,
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Import a sanctions list (uk-csv, uk-xml, ofac-csv, ofac-xml, eu-xml, opensanctions:
    /// entity file skeletons) or indicators (stix, ioc, csv: `[[networks]]` groups).
    Import {
        #[command(subcommand)]
        format: ImportCommand,
    },
    /// Show the running agent's interfaces, modes and per-entity counters.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Control socket of the running agent.
        #[arg(long, default_value = status::DEFAULT_SOCKET)]
        control_socket: PathBuf,
        /// First read the kernel maps back and compare them with the loaded policy (any drift
        /// is reported and repaired); exit 3 if there was drift.
        #[arg(long)]
        verify: bool,
    },
}

/// Options every sanctions-list format of `embargo import` takes.
#[derive(clap::Args)]
struct ListImportArgs {
    /// The list file.
    file: PathBuf,
    /// Only designations whose regime or program contains this (case-insensitive), e.g.
    /// `Cyber` or `CYBER2`.
    #[arg(long)]
    regime: Option<String>,
    /// Only these references (UK Unique ID, OFAC ent_num, EU reference...). Repeatable.
    #[arg(long = "reference", value_name = "REF")]
    references: Vec<String>,
    /// Write `list = "NAME"` into each designation (a `[[lists]]` name of the main file).
    #[arg(long, value_name = "NAME")]
    list: Option<String>,
    /// Write one `<id>.toml` per designation into this folder (never overwriting a file)
    /// instead of printing them.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// The formats `embargo import` reads.
#[derive(Subcommand)]
enum ListImport {
    /// UK Sanctions List (FCDO) CSV.
    UkCsv(ListImportArgs),
    /// UK Sanctions List (FCDO) XML.
    UkXml(ListImportArgs),
    /// OFAC SDN sdn.csv (with --alt alt.csv for the aliases).
    OfacCsv {
        #[command(flatten)]
        args: ListImportArgs,
        /// OFAC's alt.csv, for the aliases.
        #[arg(long, value_name = "ALT_CSV")]
        alt: Option<PathBuf>,
    },
    /// OFAC SDN sdn.xml.
    OfacXml(ListImportArgs),
    /// EU consolidated financial sanctions list XML.
    EuXml(ListImportArgs),
    /// OpenSanctions FollowTheMoney entities (JSON lines).
    Opensanctions(ListImportArgs),
}

/// What `embargo import` reads: sanctions lists and indicators.
#[derive(Subcommand)]
enum ImportCommand {
    #[command(flatten)]
    List(ListImport),
    #[command(flatten)]
    Indicators(IndicatorImport),
}

/// Indicator formats: each writes `[[networks]]` groups for an entity file (stdout, --out
/// FILE, or --out FILE --append to add them to the entity's file). Exits 64 on a missing
/// option, 65 on input it cannot read whole, 73 when the output cannot be written.
#[derive(Subcommand)]
enum IndicatorImport {
    /// A STIX 2.1 bundle: indicators whose `stix` pattern matches ipv4-addr/ipv6-addr values
    /// (alone or OR-joined); everything else is skipped and counted. valid_from and
    /// valid_until become the evidence's valid_from and expires.
    Stix {
        /// The bundle (JSON).
        file: PathBuf,
        #[command(flatten)]
        common: ImportArgs,
    },
    /// Plain IOC text: one indicator per line or free text, defanged forms (`192.0.2[.]1`,
    /// `hxxp://...`, `[2001:db8::1]:443`) and `#` comments; domains and hashes are counted.
    Ioc {
        file: PathBuf,
        #[command(flatten)]
        common: ImportArgs,
    },
    /// CSV with a header row: the indicator column, and optionally the type, first-seen,
    /// last-seen and source columns, and a filter keeping one entity's rows.
    Csv {
        file: PathBuf,
        /// Header of the column holding the address or CIDR.
        #[arg(long, value_name = "HEADER")]
        column: String,
        /// Header of the indicator-type column: rows whose type is not an IP type (e.g.
        /// `domain`) are skipped and counted instead of refused.
        #[arg(long, value_name = "HEADER")]
        type_column: Option<String>,
        /// Header of the first-seen date column: the evidence's valid_from.
        #[arg(long, value_name = "HEADER")]
        first_seen_column: Option<String>,
        /// Header of the last-seen date column: the evidence counts through that day.
        #[arg(long, value_name = "HEADER")]
        last_seen_column: Option<String>,
        /// Header of the source column (URL or document); empty cells fall back to --source.
        #[arg(long, value_name = "HEADER")]
        source_column: Option<String>,
        /// Keep only rows whose this column equals --filter-value.
        #[arg(long, value_name = "HEADER", requires = "filter_value")]
        filter_column: Option<String>,
        #[arg(long, value_name = "TEXT", requires = "filter_column")]
        filter_value: Option<String>,
        #[command(flatten)]
        common: ImportArgs,
    },
}

/// What every `embargo import` format takes.
#[derive(clap::Args)]
struct ImportArgs {
    /// Id of the entity the groups are for (checked against the file with --append).
    #[arg(long, value_name = "ID")]
    entity: String,
    /// Source (URL or document) of indicators whose data names none.
    #[arg(long, value_name = "URL")]
    source: Option<String>,
    /// Evidence kind: registry, routing, advisory (default) or manual.
    #[arg(long, default_value = "advisory", value_parser = parse_evidence_kind)]
    kind: EvidenceKind,
    /// When the data was retrieved, YYYY-MM-DD (default today, UTC).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    retrieved: Option<chrono::NaiveDate>,
    /// low, medium or high: for indicators whose data gives none (STIX `confidence` is used
    /// when present); default medium for ioc and csv, required for STIX indicators without one.
    #[arg(long, value_parser = parse_confidence)]
    confidence: Option<Confidence>,
    /// Write to this file instead of standard output; an existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// With --out: append to that existing entity file (it must parse, before and after, and
    /// be the file of --entity); replaced atomically.
    #[arg(long, requires = "out")]
    append: bool,
}

/// A config enum value from its TOML name.
fn parse_named<T: serde::de::DeserializeOwned>(s: &str, names: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}` is not one of {names}"))
}

fn parse_evidence_kind(s: &str) -> Result<EvidenceKind, String> {
    parse_named(s, "registry, routing, advisory, manual")
}

fn parse_confidence(s: &str) -> Result<Confidence, String> {
    parse_named(s, "low, medium, high")
}

fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date like 2026-11-27"))
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every link of the audit log; exit 1 naming the first broken one.
    Verify {
        #[arg(long, default_value = audit::DEFAULT_LOG)]
        log: PathBuf,
    },
}

fn parse_interface(s: &str) -> Result<Interface, String> {
    let mut parts = s.split(':');
    let name = parts
        .next()
        .filter(|n| !n.is_empty())
        .ok_or("expected NAME:ROLE")?;
    let role = match parts.next() {
        Some("inside") => Role::Inside,
        Some("outside") => Role::Outside,
        Some(r) => return Err(format!("role `{r}` must be `inside` or `outside`")),
        None => {
            return Err(format!(
                "`{s}` needs a role: {name}:inside or {name}:outside"
            ));
        }
    };
    let mut next = parts.next();
    let mode = match next {
        None | Some("egress") => XdpMode::Auto,
        Some(m) => {
            next = parts.next();
            match m {
                "auto" => XdpMode::Auto,
                "native" => XdpMode::Native,
                "generic" => XdpMode::Generic,
                _ => return Err(format!("mode `{m}` must be auto, native or generic")),
            }
        }
    };
    let egress = match next {
        None => false,
        Some("egress") => true,
        Some(x) => {
            return Err(format!(
                "`{x}` in `{s}`: expected NAME:ROLE[:MODE][:egress]"
            ));
        }
    };
    if parts.next().is_some() {
        return Err(format!("`{s}`: expected NAME:ROLE[:MODE][:egress]"));
    }
    let iface = Interface {
        name: name.to_owned(),
        role,
        mode,
        egress,
    };
    iface.validate()?;
    Ok(iface)
}

fn main() -> ExitCode {
    let code = command(Cli::parse());
    // What is still buffered is written (or dropped, if the reader has gone) before the exit.
    embargo::cli::output::flush();
    code
}

/// Runs one command; its exit code.
fn command(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A closed stderr drops log lines; tracing's own report of that would panic.
        .log_internal_errors(false)
        .init();
    match cli.command {
        Command::Run {
            config,
            interfaces,
            control_socket,
            audit_log,
            metrics_listen,
            events_log,
            pin_dir,
            no_pin,
            keep_attached,
            state_dir,
        } => {
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    errln!("error: starting the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run::run(RunOptions {
                config,
                interfaces,
                control_socket,
                audit_log,
                metrics_listen,
                events_log,
                pin_dir: (!no_pin).then_some(pin_dir),
                keep_attached,
                state_dir,
            })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(RunError::Config(e)) => config_error(&e),
                Err(e) => {
                    errln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { log },
        } => audit_verify(&log),
        Command::Detach {
            pin_dir,
            state_dir,
            control_socket,
        } => {
            if status::query(&control_socket).is_ok() {
                errln!(
                    "error: an agent is running ({}): stop it instead (SIGTERM detaches), or it keeps the links",
                    control_socket.display()
                );
                return ExitCode::FAILURE;
            }
            // Netlink egress filters have no pin: the state file names them.
            let filters = match embargo::dataplane::state::read(&state_dir) {
                Ok(s) => s.map(|s| s.netlink_filters).unwrap_or_default(),
                // A file of format 1 still names its netlink filters.
                Err(embargo::dataplane::state::StateError::OldFormat {
                    netlink_filters, ..
                }) => netlink_filters,
                Err(e) => {
                    errln!("warning: {e}");
                    Vec::new()
                }
            };
            let mut results = embargo::dataplane::remove_netlink_filters(&filters);
            results.extend(embargo::dataplane::detach_pinned(&pin_dir, |_| false));
            if results.is_empty() {
                outln!("nothing pinned in {}", pin_dir.display());
            }
            let mut ok = true;
            for (name, r) in results {
                match r {
                    Ok(()) => outln!("detached {name}"),
                    Err(e) => {
                        ok = false;
                        errln!("error: {name}: {e}");
                    }
                }
            }
            for (path, r) in embargo::dataplane::pins::remove_generations(&pin_dir) {
                match r {
                    Ok(()) => outln!("unpinned the maps in {}", path.display()),
                    Err(e) => {
                        ok = false;
                        errln!("error: removing {}: {e}", path.display());
                    }
                }
            }
            match embargo::dataplane::state::remove(&state_dir) {
                Ok(true) => outln!(
                    "removed the state file {}",
                    embargo::dataplane::state::path(&state_dir).display()
                ),
                Ok(false) => {}
                Err(e) => {
                    ok = false;
                    errln!("error: {e}");
                }
            }
            let _ = std::fs::remove_dir(&pin_dir);
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Check { config, json } => match embargo::compile_file(&config, embargo::today()) {
            Ok((_, compiled)) => {
                if json {
                    outln!(
                        "{}",
                        serde_json::to_string_pretty(&check_json(&compiled)).expect("serializable")
                    );
                } else {
                    out!("{}", check_summary(&config, &compiled));
                }
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Fetch { config } => fetch(&config),
        Command::Import {
            format: ImportCommand::List(format),
        } => import(format),
        Command::Plan {
            config,
            control_socket,
            limit,
            json,
        } => {
            let compiled = match embargo::compile_file(&config, embargo::today()) {
                Ok((_, c)) => c,
                Err(e) => return config_error(&e),
            };
            let next = plan::TableSnapshot::of(&compiled);
            let loaded = match status::query_table(&control_socket) {
                Ok(t) => t,
                Err(e) => {
                    errln!("note: {e}\nnote: comparing against an empty policy");
                    plan::TableSnapshot::default()
                }
            };
            let p = plan::diff(&loaded, &next);
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&p).expect("serializable")
                );
            } else {
                out!("{}", plan::render(&p, limit));
            }
            ExitCode::SUCCESS
        }
        Command::Why {
            address,
            config,
            json,
        } => match embargo::compile_file(&config, embargo::today()) {
            Ok((_, compiled)) => {
                let x = explain::explain(&compiled, address);
                if json {
                    outln!(
                        "{}",
                        serde_json::to_string_pretty(&x).expect("serializable")
                    );
                } else {
                    out!("{}", explain::render(&x));
                }
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Import {
            format: ImportCommand::Indicators(format),
        } => import_command(format),
        Command::Status {
            json,
            control_socket,
            verify,
        } => {
            let mut drifted = false;
            if verify {
                match status::query_verify(&control_socket) {
                    Ok(d) => {
                        drifted = d.total() > 0;
                        if !json {
                            outln!(
                                "attestation: {} drifted entries (IPv4 trie {}, IPv6 trie {}, policies {}, roles {}){}",
                                d.total(),
                                d.v4_entries,
                                d.v6_entries,
                                d.policies,
                                d.roles,
                                if drifted { ", repaired" } else { "" }
                            );
                        }
                    }
                    Err(e) => {
                        errln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            let code = status_command(json, &control_socket);
            if drifted && code == ExitCode::SUCCESS {
                ExitCode::from(3)
            } else {
                code
            }
        }
    }
}

fn status_command(json: bool, control_socket: &std::path::Path) -> ExitCode {
    match status::query(control_socket) {
        Ok(s) if json => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&s).expect("serializable")
            );
            ExitCode::SUCCESS
        }
        Ok(s) => {
            out!("{}", status::render(&s));
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `embargo import`: entity skeletons on stdout or into `--out`. Exit 64 when the list is
/// refused, 1 when a file exists or cannot be written (nothing is written then).
fn import(cmd: ListImport) -> ExitCode {
    use embargo::inputs::lists::{self, ListFormat, skeleton};
    let (format, args, alt) = match cmd {
        ListImport::UkCsv(a) => (ListFormat::UkCsv, a, None),
        ListImport::UkXml(a) => (ListFormat::UkXml, a, None),
        ListImport::OfacCsv { args, alt } => (ListFormat::OfacCsv, args, alt),
        ListImport::OfacXml(a) => (ListFormat::OfacXml, a, None),
        ListImport::EuXml(a) => (ListFormat::EuXml, a, None),
        ListImport::Opensanctions(a) => (ListFormat::Opensanctions, a, None),
    };
    let read = |p: &std::path::Path| embargo::config::read_text(p);
    let text = match read(&args.file) {
        Ok(t) => t,
        Err(e) => return config_error(&e),
    };
    let alt_text = match alt.as_deref().map(read).transpose() {
        Ok(t) => t,
        Err(e) => return config_error(&e),
    };
    let input = lists::ListInput {
        path: &args.file,
        text: &text,
        alt: alt.as_deref().zip(alt_text.as_deref()),
    };
    let doc = match lists::parse(format, &input) {
        Ok(d) => d,
        Err(e) => {
            errln!("error: {e}");
            errln!("the list was refused; nothing was written");
            return ExitCode::from(ConfigError::EXIT_CODE as u8);
        }
    };
    let picked = lists::filter(&doc, args.regime.as_deref(), &args.references);
    let picked_refs: std::collections::HashSet<String> = picked
        .iter()
        .map(|d| d.reference.to_ascii_lowercase())
        .collect();
    for r in &args.references {
        if !picked_refs.contains(&r.trim().to_ascii_lowercase()) {
            errln!("warning: reference {r} is not among the matching designations");
        }
    }
    if picked.is_empty() {
        errln!("error: no designation in {} matches", args.file.display());
        return ExitCode::FAILURE;
    }
    let today = embargo::today();
    let mut files: Vec<(String, String)> = Vec::new();
    // The ids taken so far: a whole list (thousands of designations) is written in linear time.
    let mut ids = std::collections::HashSet::new();
    for d in picked {
        let mut id = skeleton::slug(&d.name);
        if ids.contains(&id) {
            id = format!("{id}-{}", skeleton::slug(&d.reference));
        }
        ids.insert(id.clone());
        let text = skeleton::entity_file(&doc, d, &id, args.list.as_deref(), today);
        files.push((id, text));
    }
    let Some(dir) = args.out else {
        for (i, (id, text)) in files.iter().enumerate() {
            if i > 0 {
                outln!();
            }
            outln!("# ---- {id}.toml");
            out!("{text}");
        }
        return ExitCode::SUCCESS;
    };
    // Refuse before writing anything: no file is overwritten, none is half written.
    let existing: Vec<String> = files
        .iter()
        .map(|(id, _)| dir.join(format!("{id}.toml")))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        errln!(
            "error: {} already exist; nothing was written (move them or choose another --out)",
            existing.join(", ")
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        errln!("error: creating {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for (id, text) in &files {
        let path = dir.join(format!("{id}.toml"));
        // Whole or not at all, never over an existing name (a symlink included).
        let written = embargo::files::write::write_new(
            &path,
            text.as_bytes(),
            embargo::files::write::Mode::Create(0o666),
        );
        if let Err(e) = written {
            errln!("error: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        outln!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

/// `embargo fetch`.
fn fetch(path: &std::path::Path) -> ExitCode {
    use embargo::inputs::sources::{Outcome, manager};
    let config = match embargo::config::load(path) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let results = match rt.block_on(manager::fetch_all(&config)) {
        Ok(r) => r,
        Err(e) => return config_error(&e),
    };
    let mut failed = 0;
    for (def, result) in config.main.sources.iter().zip(results) {
        let name = def.name.get_ref();
        let unit = if def.format.get_ref().list_format().is_some() {
            "designations"
        } else {
            "prefixes"
        };
        match result {
            Ok(Outcome::Updated {
                changed, entries, ..
            }) => outln!(
                "{name}: {} ({entries} {unit})",
                if changed { "updated" } else { "unchanged" }
            ),
            Ok(Outcome::NotModified { entries, .. }) => {
                outln!("{name}: not modified ({entries} {unit})")
            }
            Err(e) => {
                failed += 1;
                errln!("error: {e}; the last-known-good copy, if any, is kept");
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `embargo import stix|ioc|csv`.
fn import_command(format: IndicatorImport) -> ExitCode {
    use embargo::inputs::import::{self, ImportError, csv, ioc, stix, writer};
    let (name, file, common) = match &format {
        IndicatorImport::Stix { file, common } => ("stix", file, common),
        IndicatorImport::Ioc { file, common } => ("ioc", file, common),
        IndicatorImport::Csv { file, common, .. } => ("csv", file, common),
    };
    let fail = |e: &ImportError| {
        errln!("error: {e}");
        errln!("nothing was written");
        let code = match e {
            ImportError::Usage(_) => 64,
            ImportError::Output { .. } => 73,
            ImportError::Read(_) | ImportError::Invalid { .. } => import::EXIT_CODE,
        };
        ExitCode::from(code as u8)
    };
    let id = &common.entity;
    if !embargo::config::validate::is_slug(id) {
        return fail(&ImportError::Usage(format!(
            "--entity `{id}` must be an entity id: lowercase letters, digits, `-` and `_`"
        )));
    }
    let today = embargo::today();
    let defaults = import::Defaults {
        kind: common.kind,
        source: common.source.clone(),
        retrieved: embargo::config::Date(common.retrieved.unwrap_or(today)),
        confidence: common.confidence,
    };
    let read = match &format {
        IndicatorImport::Stix { file, .. } => stix::read(file, &defaults),
        IndicatorImport::Ioc { file, .. } => ioc::read(file, &defaults),
        IndicatorImport::Csv {
            file,
            column,
            type_column,
            first_seen_column,
            last_seen_column,
            source_column,
            filter_column,
            filter_value,
            ..
        } => csv::read(
            file,
            &csv::Columns {
                indicator: column.clone(),
                kind: type_column.clone(),
                first_seen: first_seen_column.clone(),
                last_seen: last_seen_column.clone(),
                source: source_column.clone(),
                filter: filter_column.clone().zip(filter_value.clone()),
            },
            &defaults,
        ),
    };
    let imported = match read {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    errln!("{}: {}", file.display(), imported.summary);
    if imported.indicators.is_empty() {
        return fail(&ImportError::invalid(
            file.display(),
            "no IPv4 or IPv6 indicator to import (see what was skipped above)",
        ));
    }
    let groups = writer::group(&imported.indicators);
    let origin = writer::Origin {
        format: name,
        input: file,
        entity: id,
    };
    let text = writer::render(&groups, &defaults, &origin);
    let dest = match (&common.out, common.append) {
        (None, _) => writer::Destination::Stdout,
        (Some(p), false) => writer::Destination::New(p.clone()),
        (Some(p), true) => writer::Destination::Append(p.clone()),
    };
    if let Err(e) = writer::deliver(&dest, &text, id) {
        return fail(&e);
    }
    let prefixes: usize = groups.iter().map(|g| g.prefixes.len()).sum();
    errln!(
        "{prefixes} prefixes in {} network groups{}",
        groups.len(),
        common
            .out
            .as_ref()
            .map_or_else(String::new, |p| format!(" written to {}", p.display()))
    );
    let expired = groups
        .iter()
        .filter(|g| g.evidence.expires.is_some_and(|d| d.0 <= today))
        .count();
    let pending = groups
        .iter()
        .filter(|g| g.evidence.valid_from.is_some_and(|d| d.0 > today))
        .count();
    if expired > 0 {
        errln!(
            "note: {expired} groups' evidence expired before today ({today}): `embargo check` leaves them out"
        );
    }
    if pending > 0 {
        errln!("note: {pending} groups' evidence counts only from a later valid_from");
    }
    ExitCode::SUCCESS
}

/// `embargo check --json`: the summary and the full report.
fn check_json(c: &Compiled) -> serde_json::Value {
    serde_json::json!({
        "today": c.today,
        "enforce": c.enforce,
        "digest": c.digest(),
        "entities": c.entities,
        "prefixes_v4": c.rules.iter().filter(|r| r.net.is_ipv4()).count(),
        "prefixes_v6": c.rules.iter().filter(|r| r.net.is_ipv6()).count(),
        "allow": c.allow.iter().map(|(n, r)| serde_json::json!({"prefix": n, "reason": r})).collect::<Vec<_>>(),
        "report": c.report,
    })
}

/// `embargo check`: what a person reads.
fn check_summary(path: &std::path::Path, c: &Compiled) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let v4 = c.rules.iter().filter(|r| r.net.is_ipv4()).count();
    let v6 = c.rules.len() - v4;
    let r = &c.report;
    let _ = writeln!(o, "{}: OK", path.display());
    let _ = writeln!(
        o,
        "enforcing designations by {} as of {}",
        c.enforce.join(", "),
        c.today
    );
    let _ = writeln!(
        o,
        "entities: {} enforced, {} left out",
        c.entities.len(),
        r.entities_left_out.len()
    );
    for e in &c.entities {
        let _ = writeln!(
            o,
            "  {:<20} {:<7} {:<8} {:>7} IPv4 {:>7} IPv6  {}",
            e.id,
            format!("{:?}", e.action).to_lowercase(),
            format!("{:?}", e.direction).to_lowercase(),
            e.prefixes_v4,
            e.prefixes_v6,
            e.designations
                .iter()
                .map(|d| format!("{} {}", d.authority, d.reference))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let _ = writeln!(
        o,
        "prefixes: {v4} IPv4, {v6} IPv6 (table digest {})",
        &c.digest()[..16]
    );
    if !c.allow.is_empty() {
        let _ = writeln!(o, "allow: {} prefixes never blocked", c.allow.len());
    }
    if !r.sources.is_empty() {
        let _ = writeln!(o, "sources ({}):", r.sources.len());
        let now = chrono::Utc::now();
        for s in &r.sources {
            let _ = match s.status {
                SourceStatus::Used => {
                    let age = s.checked_at.map_or_else(String::new, |t| {
                        // To the minute: seconds would only be noise.
                        let secs = (now - t).num_minutes().max(0) as u64 * 60;
                        format!(
                            ", confirmed {} ago",
                            humantime::format_duration(std::time::Duration::from_secs(secs))
                        )
                    });
                    let unit = s.list.as_ref().map_or_else(
                        || "prefixes".to_owned(),
                        |l| format!("designations for list `{l}`"),
                    );
                    writeln!(
                        o,
                        "  {:<20} {} {unit} from {}{age}",
                        s.name,
                        s.entries,
                        s.cache.display()
                    )
                }
                SourceStatus::Skipped => writeln!(
                    o,
                    "  {:<20} SKIPPED (on_source_failure = \"skip\"): {}",
                    s.name,
                    s.problem.as_deref().unwrap_or_default()
                ),
                SourceStatus::Unreferenced => {
                    writeln!(o, "  {:<20} not used by any network group", s.name)
                }
            };
        }
    }
    if !r.lists.is_empty() {
        let _ = writeln!(o, "lists ({}):", r.lists.len());
        for l in &r.lists {
            let _ = writeln!(
                o,
                "  {:<20} {} designations ({}, {}) from {}",
                l.name,
                l.designations,
                l.format,
                l.published.map_or_else(
                    || "no publication date".to_owned(),
                    |p| format!("published {p}")
                ),
                l.path.display()
            );
        }
    }
    let mut section = |title: &str, lines: &[String], total: usize| {
        if total == 0 {
            return;
        }
        let _ = writeln!(o, "{title} ({total}):");
        for l in lines {
            let _ = writeln!(o, "  {l}");
        }
        if total > lines.len() {
            let _ = writeln!(o, "  ... and {} more", total - lines.len());
        }
    };
    let left: Vec<String> = r
        .entities_left_out
        .iter()
        .map(|(id, why)| format!("{id}: {why}"))
        .collect();
    section("left out: entities", &left, left.len());
    section(
        "delisted: designations no longer in their list",
        &r.delisted_by_list,
        r.delisted_by_list.len(),
    );
    section(
        "warning: entity files that disagree with their list (the list's values are used)",
        &r.list_warnings,
        r.list_warnings.len(),
    );
    section(
        "warning: designations whose list was skipped (kept as their entity file writes them, not delisted)",
        &r.unfollowed_designations,
        r.unfollowed_designations.len(),
    );
    section(
        "left out: expired evidence",
        &r.expired_groups,
        r.expired_groups.len(),
    );
    section(
        "left out: evidence not valid yet (valid_from)",
        &r.pending_groups,
        r.pending_groups.len(),
    );
    section("subtracted by allow", &r.subtracted, r.subtracted_total);
    section(
        "same prefix in two entities",
        &r.same_prefix,
        r.same_prefix_total,
    );
    section(
        "nested prefixes of different entities (the more specific wins)",
        &r.nested,
        r.nested_total,
    );
    section(
        "broad prefixes accepted by guard_override",
        &r.guard_overridden,
        r.guard_overridden.len(),
    );
    if r.duplicates > 0 {
        let _ = writeln!(
            o,
            "duplicates within an entity, counted once: {}",
            r.duplicates
        );
    }
    o
}

/// `embargo audit verify`: 0 with the record count when the chain holds, else 1.
fn audit_verify(log: &std::path::Path) -> ExitCode {
    match audit::verify(log) {
        Ok(r) => match &r.first_break {
            None => {
                outln!("{}: {} records, chain intact", log.display(), r.records);
                ExitCode::SUCCESS
            }
            Some(b) => {
                errln!("error: {}: chain broken at {b}", log.display());
                errln!("{} records before it are intact", r.records);
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            errln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config_error(e: &ConfigError) -> ExitCode {
    errln!("error: {e}");
    errln!("the configuration was refused; nothing from it was applied");
    ExitCode::from(ConfigError::EXIT_CODE as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_flags_parse() {
        let i = parse_interface("eth0:outside:generic").unwrap();
        assert_eq!(
            (i.name.as_str(), i.role, i.mode),
            ("eth0", Role::Outside, XdpMode::Generic)
        );
        assert!(!i.egress);
        assert!(parse_interface("eth0").is_err());
        assert!(parse_interface("eth0:middle").is_err());
        assert!(parse_interface("eth0:inside:fast").is_err());
    }

    #[test]
    fn egress_is_the_last_interface_flag_and_outside_only() {
        for (flag, mode) in [
            ("eth0:outside:egress", XdpMode::Auto),
            ("eth0:outside:generic:egress", XdpMode::Generic),
            ("eth0:outside:native:egress", XdpMode::Native),
        ] {
            let i = parse_interface(flag).unwrap();
            assert_eq!(
                (i.role, i.mode, i.egress),
                (Role::Outside, mode, true),
                "{flag}"
            );
        }
        let err = parse_interface("eth1:inside:egress").unwrap_err();
        assert!(err.contains("only for `outside`"), "{err}");
        assert!(parse_interface("eth0:outside:egress:generic").is_err());
        assert!(parse_interface("eth0:outside:generic:egress:x").is_err());
        assert!(parse_interface("eth0:outside:generic:ingress").is_err());
    }
}
