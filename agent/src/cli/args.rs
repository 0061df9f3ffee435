//! The `embargo` command line's arguments: the clap types every subcommand parses into, and
//! the parsers of the values that are not plain strings (`--interface`, dates, config enums).
//!
//! Invariants: these types hold what the user typed and nothing more (no file is read and no
//! default is resolved from the configuration here); a value that cannot be parsed is refused by
//! clap with the parser's message (exit 2, clap's own), so every command body gets valid values.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};

use crate::{
    config::{Confidence, EvidenceKind, Interface, OnBadLine, Role, XdpMode},
    observe::{audit, status},
    policy::export,
};

fn parse_export_format(s: &str) -> Result<export::Format, String> {
    s.parse().map_err(|e: export::ExportError| e.to_string())
}

/// Where XDP links are pinned unless --pin-dir says otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/embargo";

/// Where the configuration lives unless --config says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/embargo/embargo.toml";

#[derive(Parser)]
#[command(
    name = "embargo",
    version = crate::build_info::LONG,
    about = "Sanctions-aware egress firewall agent (XDP)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines on standard error are written: `text` (colours only on a terminal) or
    /// `json` (one object per line: timestamp, level, target, message and fields).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "EMBARGO_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What is logged: a level (error, warn, info, debug, trace) or `RUST_LOG`-style
    /// directives (`info,embargo::run=debug`). Default: `RUST_LOG`, else info.
    #[arg(long, global = true, value_name = "FILTER", env = "EMBARGO_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// The authorities `embargo init --authority` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InitAuthority {
    /// United Kingdom (FCDO UK Sanctions List).
    #[value(name = "UK", alias = "uk")]
    Uk,
    /// United States (OFAC SDN List).
    #[value(name = "US", alias = "us")]
    Us,
    /// European Union (consolidated financial sanctions list).
    #[value(name = "EU", alias = "eu")]
    Eu,
    /// United Nations Security Council (consolidated list).
    #[value(name = "UN", alias = "un")]
    Un,
}

/// How log lines are written ([`Cli::log_format`]); defined with the logging it configures.
pub use crate::observe::log::LogFormat;

#[derive(Subcommand)]
pub enum Command {
    /// Load the policy, attach to the interfaces and enforce until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Remove every pinned XDP link (enforcement stops) after the agent has exited.
    Detach {
        /// bpffs folder the agent pinned its links and maps in.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// The agent's state folder: its state file is removed too.
        #[arg(long, default_value = crate::dataplane::state::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Control socket of the agent, checked to be gone first.
        #[arg(long, default_value = status::DEFAULT_SOCKET, env = "EMBARGO_CONTROL_SOCKET")]
        control_socket: PathBuf,
        /// Print what was removed as JSON (links, netlink filters, maps, state file, errors);
        /// errors as one JSON object on standard error.
        #[arg(long)]
        json: bool,
    },
    /// Work with the policy audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Validate and compile the configuration; print what it enforces and what it left out.
    Check {
        /// Configuration file (the main file; it includes the entity files).
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "EMBARGO_CONFIG")]
        config: PathBuf,
        /// Print the full report as JSON; errors as one JSON object on standard error
        /// (`{"error", "exit_code", ...}`).
        #[arg(long)]
        json: bool,
        /// Warn about evidence that stops counting within this long (e.g. 14d, 36h, 2weeks).
        #[arg(long, value_name = "DURATION", default_value = "14d", value_parser = parse_horizon)]
        expiring: std::time::Duration,
        /// Exit 4 when an enforced entity has no current prefixes or evidence expires within
        /// --expiring (for CI).
        #[arg(long)]
        strict: bool,
    },
    /// Fetch every remote source once into its cache, as `run` does at start, and say how
    /// each went. Exits 1 if any fetch failed (its last-known-good copy is kept).
    Fetch {
        /// Configuration file (the main file; it includes the entity files).
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "EMBARGO_CONFIG")]
        config: PathBuf,
        /// Print one JSON document: per source its name, URL (credentials hidden), outcome
        /// (updated, not_modified, failed), entries, sha256, error and skipped lines; errors
        /// as one JSON object on standard error.
        #[arg(long)]
        json: bool,
    },
    /// Show what applying the configuration would change against what the agent has loaded.
    Plan {
        /// Configuration file (the main file; it includes the entity files).
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "EMBARGO_CONFIG")]
        config: PathBuf,
        /// Control socket of the running agent.
        #[arg(long, default_value = status::DEFAULT_SOCKET, env = "EMBARGO_CONTROL_SOCKET")]
        control_socket: PathBuf,
        /// Longest list printed per kind of change.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of text; errors as one JSON object on standard error.
        #[arg(long)]
        json: bool,
    },
    /// Explain why an address is blocked, monitored, allowed or not listed.
    Why {
        /// Addresses (IPv4 or IPv6) and CIDRs to explain (a CIDR: every enforced prefix,
        /// allow rule and left-out listing overlapping it); `-` reads them from standard input,
        /// one per line (`#` comments and blank lines skipped). With more than one question,
        /// `--json` prints one JSON object per line.
        #[arg(required = true, value_name = "ADDRESS|CIDR|-")]
        queries: Vec<String>,
        /// Configuration file (the main file; it includes the entity files).
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "EMBARGO_CONFIG")]
        config: PathBuf,
        /// Print JSON instead of text; errors as one JSON object on standard error.
        #[arg(long)]
        json: bool,
    },
    /// Write the enforced prefixes for another firewall: a plain CIDR list, a PAN-OS External
    /// Dynamic List, an `nft -f` file (interval sets per entity), an `ipset restore` file or a
    /// STIX 2.1 bundle. What `embargo why` says is dropped, and nothing else.
    Export {
        /// cidr | edl | nft | ipset | stix.
        #[arg(long, value_parser = parse_export_format)]
        format: export::Format,
        /// Only this entity (by id).
        #[arg(long)]
        entity: Option<String>,
        /// Monitored entities too (only blocked ones by default: an export feeds block lists).
        #[arg(long)]
        monitored: bool,
        /// Configuration file (the main file; it includes the entity files).
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "EMBARGO_CONFIG")]
        config: PathBuf,
        /// Write to this file (replaced atomically, never through a symlink) instead of
        /// standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Start a configuration: a commented main file (`embargo.toml`) and an empty `entities/`
    /// folder in DIR (created; an existing DIR must be empty), which `embargo check` accepts.
    Init {
        /// The authority the gateway enforces: UK, US, EU or UN (default UK). Repeatable:
        /// `--authority UK --authority US` enforces both.
        #[arg(long, value_enum)]
        authority: Vec<InitAuthority>,
        /// The folder to write into.
        dir: PathBuf,
    },
    /// Import a sanctions list (uk-csv, uk-xml, ofac-csv, ofac-xml, eu-xml, opensanctions:
    /// entity file skeletons) or indicators (stix, ioc, csv: `[[networks]]` groups).
    Import {
        #[command(subcommand)]
        format: ImportCommand,
    },
    /// Print a shell completion script: `embargo completion bash > /etc/bash_completion.d/embargo`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the embargo(8) manual page (roff): `embargo man | man -l -`.
    #[command(hide = true)]
    Man,
    /// The compliance record for a period: the policies applied (audit log, verified first),
    /// each entity's designations and evidence groups, drops per interface and direction from
    /// the events, the running agent's counters, delistings and expiries, and the audit
    /// chain's head hash. Exits 1 on a broken audit chain.
    Report(ReportArgs),
    /// Stream the running agent's drop and monitor events as they happen (like `hubble
    /// observe`): a line each, until Ctrl-C or the agent stops (exit 1). Needs `[events]
    /// output` other than "none" in the agent's configuration. A client that reads too slowly
    /// loses events (the agent never waits for it) and is told how many in the stream.
    Events {
        /// Keep following the events (the only mode: required).
        #[arg(long, required = true)]
        follow: bool,
        /// Only this entity's events (by id).
        #[arg(long, value_name = "ID")]
        entity: Option<String>,
        /// Print JSON lines, the events log's records (and `{"lost", "notice"}` lines for
        /// events lost); errors as one JSON object on standard error.
        #[arg(long)]
        json: bool,
        /// Control socket of the running agent.
        #[arg(long, default_value = status::DEFAULT_SOCKET, env = "EMBARGO_CONTROL_SOCKET")]
        control_socket: PathBuf,
    },
    /// Show the running agent's interfaces, modes and per-entity counters.
    Status {
        /// Print JSON instead of a table; errors as one JSON object on standard error.
        #[arg(long)]
        json: bool,
        /// Control socket of the running agent.
        #[arg(long, default_value = status::DEFAULT_SOCKET, env = "EMBARGO_CONTROL_SOCKET")]
        control_socket: PathBuf,
        /// First read the kernel maps back and compare them with the loaded policy (any drift
        /// is reported and repaired); exit 3 if there was drift.
        #[arg(long)]
        verify: bool,
        /// Refresh in place every --interval: per-entity packets and bytes per second and
        /// totals (with --json: one JSON object per sample, a line each). Ends on Ctrl-C,
        /// after --count samples, or when the agent goes away (exit 1).
        #[arg(long, conflicts_with = "verify")]
        watch: bool,
        /// Time between samples with --watch (e.g. 1s, 500ms).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, requires = "watch")]
        interval: std::time::Duration,
        /// Stop after this many samples with --watch.
        #[arg(long, requires = "watch")]
        count: Option<u64>,
    },
}

impl Command {
    /// Whether the command was given `--json`: its errors are then reported as JSON
    /// ([`super::output::set_json`]).
    pub fn json(&self) -> bool {
        match self {
            Command::Check { json, .. }
            | Command::Fetch { json, .. }
            | Command::Plan { json, .. }
            | Command::Why { json, .. }
            | Command::Status { json, .. }
            | Command::Events { json, .. }
            | Command::Detach { json, .. }
            | Command::Audit {
                command: AuditCommand::Verify { json, .. },
            } => *json,
            Command::Import { format } => format.json(),
            _ => false,
        }
    }
}

impl ImportCommand {
    /// Whether the import was given `--json`.
    pub fn json(&self) -> bool {
        match self {
            ImportCommand::List(
                ListImport::UkCsv(a)
                | ListImport::UkXml(a)
                | ListImport::OfacCsv { args: a, .. }
                | ListImport::OfacXml { args: a, .. }
                | ListImport::EuXml(a)
                | ListImport::Opensanctions(a),
            ) => a.json,
            ImportCommand::Indicators(
                IndicatorImport::Stix { common, .. }
                | IndicatorImport::Ioc { common, .. }
                | IndicatorImport::Csv { common, .. },
            ) => common.json,
        }
    }
}

/// What `embargo run` takes.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Configuration file.
    #[arg(long, short, default_value = DEFAULT_CONFIG, env = "EMBARGO_CONFIG")]
    pub config: PathBuf,
    /// NAME:ROLE[:MODE][:egress] (role inside|outside, mode auto|native|generic; `egress`,
    /// outside only, also matches the destinations of packets the host sends out of it);
    /// adds to or overrides the config's interfaces. Repeatable.
    #[arg(long = "interface", short, value_parser = parse_interface)]
    pub interfaces: Vec<Interface>,
    /// Control socket `embargo status` talks to.
    #[arg(long, default_value = status::DEFAULT_SOCKET, env = "EMBARGO_CONTROL_SOCKET")]
    pub control_socket: PathBuf,
    /// Hash-chained log of every applied policy (see `embargo audit verify`).
    #[arg(long, default_value = audit::DEFAULT_LOG)]
    pub audit_log: PathBuf,
    /// ADDRESS:PORT for /metrics, /healthz and /readyz; overrides the config's
    /// `[metrics] listen` (default 127.0.0.1:9610).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// JSON-lines file for drop and monitor events; overrides the config's `[events] path`
    /// (default /var/lib/embargo/events.jsonl) and implies `output = "file"`.
    #[arg(long, value_name = "PATH")]
    pub events_log: Option<PathBuf>,
    /// bpffs folder where the XDP links are pinned, so enforcement survives the agent (a
    /// restarted agent takes them over without detaching).
    #[arg(long, default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// Do not pin: enforcement ends with the agent.
    #[arg(long, conflicts_with = "keep_attached")]
    pub no_pin: bool,
    /// On SIGINT/SIGTERM leave the pinned links attached (enforcement continues with the
    /// loaded policy) instead of detaching; the next agent adopts them.
    #[arg(long)]
    pub keep_attached: bool,
    /// Folder (created 0700) of the state file describing the pinned maps, so a restarted
    /// agent reuses them and applies its policy as a diff.
    #[arg(long, default_value = crate::dataplane::state::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

/// What `embargo report` takes.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// Start of the period: a date (from its 00:00 UTC) or an RFC 3339 instant.
    #[arg(long, value_name = "DATE|INSTANT")]
    pub from: String,
    /// End of the period (exclusive): a date (through its end) or an RFC 3339 instant;
    /// default now.
    #[arg(long, value_name = "DATE|INSTANT")]
    pub to: Option<String>,
    /// md (Markdown, for people), json (for a GRC tool; `schema`/`version` members) or csv
    /// (one row per entity x interface x direction x verdict).
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    /// Configuration file: each entity's designations and evidence groups.
    #[arg(long, short, default_value = DEFAULT_CONFIG, env = "EMBARGO_CONFIG")]
    pub config: PathBuf,
    /// The audit log (what `embargo run --audit-log` writes); verified before anything else.
    #[arg(long, default_value = audit::DEFAULT_LOG)]
    pub audit_log: PathBuf,
    /// The events file (its rotated copies `PATH.1`... are read too); default the
    /// configuration's `[events] path`, else /var/lib/embargo/events.jsonl.
    #[arg(long, value_name = "PATH")]
    pub events_log: Option<PathBuf>,
    /// Control socket of the running agent, for its counters (the report says when it cannot
    /// be reached).
    #[arg(long, default_value = status::DEFAULT_SOCKET, env = "EMBARGO_CONTROL_SOCKET")]
    pub control_socket: PathBuf,
}

/// The formats of `embargo report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Markdown.
    Md,
    /// JSON.
    Json,
    /// CSV.
    Csv,
}

/// Options every sanctions-list format of `embargo import` takes.
#[derive(clap::Args)]
pub struct ListImportArgs {
    /// The list file.
    pub file: PathBuf,
    /// Only designations whose regime or program contains this (case-insensitive), e.g.
    /// `Cyber` or `CYBER2`.
    #[arg(long)]
    pub regime: Option<String>,
    /// Only these references (UK Unique ID, OFAC ent_num, EU reference...). Repeatable.
    #[arg(long = "reference", value_name = "REF")]
    pub references: Vec<String>,
    /// Write `list = "NAME"` into each designation (a `[[lists]]` name of the main file).
    #[arg(long, value_name = "NAME")]
    pub list: Option<String>,
    /// Write one `<id>.toml` per designation into this folder (never overwriting a file)
    /// instead of printing them; with --append, the existing entity file to add to.
    #[arg(long, value_name = "DIR|FILE")]
    pub out: Option<PathBuf>,
    /// The entity id (file `<ID>.toml`) instead of one derived from the name; the selection
    /// must then be one designation.
    #[arg(long, value_name = "ID", conflicts_with = "append")]
    pub id: Option<String>,
    /// With --append: the id of the entity whose file --out is (checked against the file).
    #[arg(long, value_name = "ID", requires = "append")]
    pub entity: Option<String>,
    /// Add the selected designations to the existing entity file --out of --entity (it must
    /// parse, before and after; a designation it already has is refused); replaced atomically.
    #[arg(long, requires_all = ["out", "entity"])]
    pub append: bool,
    /// The designation date, YYYY-MM-DD, for designations the list gives none (OFAC's
    /// sdn.csv and sdn.xml: take it from the authority's notice).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub listed_on: Option<chrono::NaiveDate>,
    /// The summary (designations, files written, references not found) as one JSON line
    /// `{"summary": {...}}`: on standard output with --out (instead of the `wrote` lines), else
    /// on standard error (standard output keeps the skeletons). Errors as one JSON object on
    /// standard error.
    #[arg(long)]
    pub json: bool,
}

/// The formats `embargo import` reads.
#[derive(Subcommand)]
pub enum ListImport {
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
        /// OFAC's advanced XML (sdn_advanced.xml), for the designation dates sdn.csv lacks.
        #[arg(long, value_name = "SDN_ADVANCED_XML")]
        dates: Option<PathBuf>,
    },
    /// OFAC SDN sdn.xml.
    OfacXml {
        #[command(flatten)]
        args: ListImportArgs,
        /// OFAC's advanced XML (sdn_advanced.xml), for the designation dates sdn.xml lacks.
        #[arg(long, value_name = "SDN_ADVANCED_XML")]
        dates: Option<PathBuf>,
    },
    /// EU consolidated financial sanctions list XML.
    EuXml(ListImportArgs),
    /// OpenSanctions FollowTheMoney entities (JSON lines).
    Opensanctions(ListImportArgs),
}

/// What `embargo import` reads: sanctions lists and indicators.
// Parsed once per run: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum ImportCommand {
    #[command(flatten)]
    List(ListImport),
    #[command(flatten)]
    Indicators(IndicatorImport),
}

/// Indicator formats: each writes `[[networks]]` groups for an entity file (stdout, --out
/// FILE, or --out FILE --append to add them to the entity's file). Exits 64 on a missing
/// option, 65 on input it cannot read whole, 73 when the output cannot be written.
// Parsed once per run: the size of the csv variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum IndicatorImport {
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
    /// Lines of prose skip and count build numbers and software versions instead of refusing.
    Ioc {
        /// The indicator file.
        file: PathBuf,
        #[command(flatten)]
        common: ImportArgs,
    },
    /// CSV (or TSV...): the indicator column, and optionally the type, first-seen, last-seen
    /// and source columns, and a filter keeping one entity's rows. Columns are header names or
    /// 1-based numbers (numbers only with --no-header).
    Csv {
        /// The indicator file.
        file: PathBuf,
        /// Column holding the address or CIDR: its header, or its number (1 for the first).
        #[arg(long, value_name = "COLUMN")]
        column: String,
        /// Column of the indicator type: rows whose type is not one of --types are skipped and
        /// counted by type.
        #[arg(long, value_name = "COLUMN")]
        type_column: Option<String>,
        /// With --type-column: the accepted types, comma-separated, case-insensitive (default
        /// the IP types: ip, ipv4, ipv6, ip-src, ip-dst, ip-src|port, ip-dst|port, ip:port,
        /// ipv4-addr, ipv6-addr, ip-address, cidr, ipv4-cidr, ipv6-cidr, netblock).
        #[arg(
            long,
            value_name = "TYPE,...",
            value_delimiter = ',',
            requires = "type_column"
        )]
        types: Option<Vec<String>>,
        /// Field separator, one character: `,` (default), `;`, `|`, or `tab` (or `\t`) for
        /// tab-separated values.
        #[arg(long, value_name = "CHAR", default_value = ",")]
        delimiter: String,
        /// The file has no header row: columns are numbers, 1 for the first, and `#` lines are
        /// comments.
        #[arg(long)]
        no_header: bool,
        /// What a row whose indicator (or date) is bad does: `refuse` (default: nothing is
        /// written) or `skip` (counted, and each listed on standard error with its line).
        #[arg(long, value_name = "refuse|skip", default_value = "refuse", value_parser = parse_on_bad_line)]
        on_bad_line: OnBadLine,
        /// Column of the first-seen date: the evidence's valid_from.
        #[arg(long, value_name = "COLUMN")]
        first_seen_column: Option<String>,
        /// Column of the last-seen date: the evidence counts through that day (with
        /// --max-age: that long after it).
        #[arg(long, value_name = "COLUMN")]
        last_seen_column: Option<String>,
        /// Column of the source (URL or document); empty cells fall back to --source.
        #[arg(long, value_name = "COLUMN")]
        source_column: Option<String>,
        /// Keep only rows whose this column equals --filter-value.
        #[arg(long, value_name = "COLUMN", requires = "filter_value")]
        filter_column: Option<String>,
        /// The value --filter-column must equal for a row to be kept.
        #[arg(long, value_name = "TEXT", requires = "filter_column")]
        filter_value: Option<String>,
        #[command(flatten)]
        common: ImportArgs,
    },
}

/// What every `embargo import` format takes.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// Id of the entity the groups are for (checked against the file with --append).
    #[arg(long, value_name = "ID")]
    pub entity: String,
    /// Source (URL or document) of indicators whose data names none.
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// Evidence kind: registry, routing, advisory (default) or manual.
    #[arg(long, default_value = "advisory", value_parser = parse_evidence_kind)]
    pub kind: EvidenceKind,
    /// When the data was retrieved, YYYY-MM-DD (default today, UTC).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub retrieved: Option<chrono::NaiveDate>,
    /// low, medium or high: for indicators whose data gives none (STIX `confidence` is used
    /// when present); default medium for ioc and csv, required for STIX indicators without one.
    #[arg(long, value_parser = parse_confidence)]
    pub confidence: Option<Confidence>,
    /// The evidence stops counting on this date, YYYY-MM-DD (written as `expires`; where the
    /// data gives an earlier end, that one is kept).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub expires: Option<chrono::NaiveDate>,
    /// The evidence counts this long (e.g. `90d`, `26weeks`; whole days, as `max_age` in an
    /// entity file): from the last-seen day for rows that have one (written as `expires`),
    /// else from --retrieved (written as `max_age`).
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Write to this file instead of standard output; an existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// With --out: append to that existing entity file (it must parse, before and after, and
    /// be the file of --entity); replaced atomically.
    #[arg(long, requires = "out")]
    pub append: bool,
    /// Keep indicators in special-purpose ranges (private, loopback, documentation, ...;
    /// left out and counted otherwise) and write `guard_override = REASON` on every group.
    #[arg(long, value_name = "REASON")]
    pub guard_override: Option<String>,
    /// The summary (imported, skipped and ignored by reason, bad lines, special-purpose
    /// ranges, prefixes and groups, the file written) as one JSON line `{"summary": {...}}`
    /// instead of text: on standard output with --out, else on standard error (standard
    /// output keeps the TOML). Errors as one JSON object on standard error.
    #[arg(long)]
    pub json: bool,
}

/// A config enum value from its TOML name.
fn parse_named<T: serde::de::DeserializeOwned>(s: &str, names: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}` is not one of {names}"))
}

fn parse_evidence_kind(s: &str) -> Result<EvidenceKind, String> {
    parse_named(s, "registry, routing, advisory, manual")
}

fn parse_on_bad_line(s: &str) -> Result<OnBadLine, String> {
    parse_named(s, "refuse, skip")
}

fn parse_confidence(s: &str) -> Result<Confidence, String> {
    parse_named(s, "low, medium, high")
}

fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date like 2026-11-27"))
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check every link of the audit log; exit 1 naming the first broken one.
    Verify {
        /// The audit log (what `embargo run --audit-log` writes); `--log` is the older name.
        #[arg(long = "audit-log", visible_alias = "log", default_value = audit::DEFAULT_LOG)]
        log: PathBuf,
        /// Print `{path, records, intact, last_hash, first_broken}` as JSON (`first_broken`:
        /// line, seq, reason, problem; null when intact); errors as one JSON object on standard
        /// error.
        #[arg(long)]
        json: bool,
    },
}

/// `--expiring`: a duration such as `14d` or `36h`.
fn parse_horizon(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 14d or 36h"))
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
    iface.validate().map_err(|e| e.to_string())?;
    Ok(iface)
}
#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every command and every option says what it is for in `--help` (and the man page).
    #[test]
    fn every_command_and_option_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} --{}", a.get_long().unwrap_or(id)));
                }
            }
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "embargo", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

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
