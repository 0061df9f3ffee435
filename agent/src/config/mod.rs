//! The configuration: a main file and the entity files it includes.
//!
//! TOML read with serde and `deny_unknown_fields`. Every error names the file, line and column
//! and says what to do; nothing from a configuration that fails is used. Loading reads files
//! only; turning the model into a table is [`crate::policy::compile`]'s job.

pub mod validate;

use std::{
    collections::BTreeMap,
    fmt, fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

use chrono::NaiveDate;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// Largest file read, so a wrong path (a disk image, a log) fails fast.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// The main file.

/// The main configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MainFile {
    /// Authorities whose designations this gateway enforces (`UK`, `US`, `EU`, `UN`, or others
    /// by name). An entity is enforced when it has at least one current designation by one of
    /// them; the same entity files then serve gateways under different jurisdictions.
    pub enforce: Vec<Spanned<String>>,
    /// Entity files or directories of them (`*.toml`, read in name order), relative to this file.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// IP-to-ASN range table (CSV `ip_range_start,ip_range_end,as_number[,as_organization]`,
    /// the `@ip-location-db/asn` layout), needed when an entity lists `asn`: one file or a list
    /// (e.g. the IPv4 and the IPv6 file). Relative to this file. See [`crate::inputs::ranges`].
    #[serde(default)]
    pub asn_table: Option<Spanned<TablePaths>>,
    /// IP-to-country range table (CSV `ip_range_start,ip_range_end,country_code`, the
    /// `@ip-location-db/geo-whois-asn-country` layout), needed when an entity lists
    /// `countries`: one file or a list. Relative to this file. See [`crate::inputs::ranges`].
    #[serde(default)]
    pub country_table: Option<Spanned<TablePaths>>,
    /// Prefixes never blocked, whatever an entity says.
    #[serde(default)]
    pub allow: Vec<AllowRule>,
    /// Limits that refuse dangerous input.
    #[serde(default)]
    pub guard: Guard,
    /// Interfaces to attach to. `embargo run --interface` adds to or overrides these. Each
    /// passed [`Interface::validate`] (with its place in the file) when the file was read.
    #[serde(default)]
    pub interfaces: Vec<Spanned<Interface>>,
    /// Entities may also be written inline in the main file.
    #[serde(default)]
    pub entities: Vec<EntityDef>,
    /// Remote sources (HTTPS feeds) that network groups reference by name.
    #[serde(default)]
    pub sources: Vec<SourceDef>,
    /// Where each source's last-known-good copy is kept (`<name>.body`, `<name>.meta.json`,
    /// `<name>.minisig`). Relative to this file; default [`crate::inputs::sources::DEFAULT_CACHE_DIR`].
    /// `embargo check` reads sources from here only; it never fetches.
    #[serde(default)]
    pub cache_dir: Option<Spanned<String>>,
    /// What to do with a source that has no usable content (never fetched successfully and no
    /// last-known-good copy): `refuse` the policy (default) or `skip` the source. Each source
    /// may override it.
    #[serde(default)]
    pub on_source_failure: OnSourceFailure,
    /// The metrics and health endpoints.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Drop and monitor events (see [`crate::observe::events`]).
    #[serde(default)]
    pub events: EventsSettings,
    /// Sanctions lists read on every compile; a designation with `list = "<name>"` follows its
    /// list (see [`crate::inputs::lists`]).
    #[serde(default)]
    pub lists: Vec<ListDef>,
}

/// A sanctions list file read on every compile (start and each reload; a change to it
/// triggers a reload). A list that cannot be read or parsed, or has no designations, refuses
/// the configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListDef {
    /// Slug (lowercase letters, digits, `-`, `_`) that designations name with `list = "..."`.
    pub name: Spanned<String>,
    /// `uk-csv`, `uk-xml`, `ofac-csv`, `ofac-xml`, `eu-xml` or `opensanctions`. Required with
    /// `path`; not written with `source` (the source's `format` is the list's).
    #[serde(default)]
    pub format: Option<Spanned<crate::inputs::lists::ListFormat>>,
    /// The list file, relative to this file. Exactly one of `path` and `source`.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// A `[[sources]]` name whose `format` is a list format: the list is then read from that
    /// source's last-known-good copy, fetched and refreshed like any source. Exactly one of
    /// `path` and `source`.
    #[serde(default)]
    pub source: Option<Spanned<String>>,
    /// `ofac-csv` with `path` only: OFAC's `alt.csv` (the aliases), relative to this file.
    /// Optional; always a local file.
    #[serde(default)]
    pub alt_path: Option<Spanned<String>>,
}

/// One file or a list of files, e.g. `asn_table = "asn.csv"` or
/// `asn_table = ["asn-ipv4.csv", "asn-ipv6.csv"]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged, expecting = "a file name or a list of file names")]
pub enum TablePaths {
    One(String),
    Many(Vec<String>),
}

impl TablePaths {
    /// The file names, in order.
    pub fn list(&self) -> &[String] {
        match self {
            TablePaths::One(p) => std::slice::from_ref(p),
            TablePaths::Many(ps) => ps,
        }
    }
}

/// A remote source: a feed of prefixes fetched over HTTPS, verified, parsed whole and cached.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    /// Slug (lowercase letters, digits, `-`, `_`) used by `sources = [...]`, metrics and files.
    pub name: Spanned<String>,
    /// `https://` only: plain HTTP is refused.
    pub url: Spanned<String>,
    /// How the body lists prefixes (`list`, `csv`, `json`, `taxii`), or the sanctions list format of a
    /// source that a `[[lists]]` entry reads (`uk-csv`, `uk-xml`, `ofac-csv`, `ofac-xml`,
    /// `eu-xml`, `opensanctions`).
    pub format: Spanned<SourceFormat>,
    /// `csv`: the column holding the prefixes: its header, or its number (1-based; the only
    /// way with `header = false`).
    #[serde(default)]
    pub column: Option<Spanned<ColumnRef>>,
    /// `csv`: the field separator, one byte (default `","`; a tab is `"\t"` or `"tab"`).
    #[serde(default)]
    pub delimiter: Option<Spanned<String>>,
    /// `csv`: whether the first row is a header (default `true`); with `false`, columns are
    /// given by number.
    #[serde(default)]
    pub header: Option<Spanned<bool>>,
    /// `csv`: the column holding each row's indicator type; rows of a type not in `types` are
    /// skipped and counted by type.
    #[serde(default)]
    pub type_column: Option<Spanned<ColumnRef>>,
    /// With `type_column`: the accepted types (case-insensitive; default the IP types of
    /// [`crate::inputs::import::csv::IP_TYPES`]).
    #[serde(default)]
    pub types: Option<Spanned<Vec<String>>>,
    /// `list` and `csv`: what a bad line does to the body (default `refuse`: the whole body).
    #[serde(default)]
    pub on_bad_line: Option<Spanned<OnBadLine>>,
    /// `json`: the key holding the prefix when the array holds objects.
    #[serde(default)]
    pub field: Option<Spanned<String>>,
    /// `taxii`: the collection's id on the API root that `url` names (required).
    #[serde(default)]
    pub collection: Option<Spanned<String>>,
    /// `taxii`: a file holding the bearer token sent as `Authorization: Bearer ...`, relative
    /// to this file; not readable by others. Never logged, never written to the copy.
    #[serde(default)]
    pub bearer_token_file: Option<Spanned<String>>,
    /// `taxii`: a file holding `user:password` for HTTP basic authentication, relative to
    /// this file; not readable by others. Never logged, never written to the copy.
    #[serde(default)]
    pub basic_auth_file: Option<Spanned<String>>,
    /// How often to fetch it (default `1h`).
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    /// Longest one fetch may take, connection to last byte and signature (default `30s`).
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// Largest body accepted, in bytes (default 16 MiB); reading stops past it.
    #[serde(default)]
    pub max_bytes: Option<Spanned<u64>>,
    /// Pinned SHA-256 (hex) of the body: any other body is refused.
    #[serde(default)]
    pub sha256: Option<Spanned<String>>,
    /// Minisign (Ed25519) public key, base64 (`RW...`): the body must come with a valid
    /// `<url>.minisig` made with it.
    #[serde(default)]
    pub minisign_key: Option<Spanned<String>>,
    /// Extra CA certificates (PEM) trusted for this source, relative to this file. The public
    /// roots stay trusted; verification cannot be turned off.
    #[serde(default)]
    pub ca_file: Option<Spanned<String>>,
    /// Overrides the main file's `on_source_failure` for this source.
    #[serde(default)]
    pub on_source_failure: Option<OnSourceFailure>,
}

/// How a source's body lists prefixes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// One CIDR or address per line; `#` starts a comment.
    List,
    /// CSV with a header row; `column` names the column with the prefixes.
    Csv,
    /// A JSON array of strings, or of objects whose `field` holds the prefix.
    Json,
    /// A TAXII 2.1 collection (`url` is the API root, `collection` its id): the indicators'
    /// STIX patterns, read with the STIX importer's rules.
    Taxii,
    /// A sanctions list (UK Sanctions List CSV), for a `[[lists]]` entry with `source = ...`.
    #[serde(rename = "uk-csv")]
    UkCsv,
    /// A sanctions list (UK Sanctions List XML).
    #[serde(rename = "uk-xml")]
    UkXml,
    /// A sanctions list (OFAC `sdn.csv`; its `alt.csv` is not fetched).
    #[serde(rename = "ofac-csv")]
    OfacCsv,
    /// A sanctions list (OFAC `sdn.xml`).
    #[serde(rename = "ofac-xml")]
    OfacXml,
    /// A sanctions list (EU consolidated list XML).
    #[serde(rename = "eu-xml")]
    EuXml,
    /// A sanctions list (OpenSanctions FollowTheMoney JSON lines).
    #[serde(rename = "opensanctions")]
    Opensanctions,
}

impl SourceFormat {
    /// The sanctions list format, for the list formats; `None` for the prefix formats.
    pub fn list_format(self) -> Option<crate::inputs::lists::ListFormat> {
        use crate::inputs::lists::ListFormat as L;
        match self {
            SourceFormat::List | SourceFormat::Csv | SourceFormat::Json | SourceFormat::Taxii => {
                None
            }
            SourceFormat::UkCsv => Some(L::UkCsv),
            SourceFormat::UkXml => Some(L::UkXml),
            SourceFormat::OfacCsv => Some(L::OfacCsv),
            SourceFormat::OfacXml => Some(L::OfacXml),
            SourceFormat::EuXml => Some(L::EuXml),
            SourceFormat::Opensanctions => Some(L::Opensanctions),
        }
    }
}

/// A table column: a header name or a 1-based column number.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ColumnRef {
    Number(i64),
    Name(String),
}

impl ColumnRef {
    /// As written on a command line: a number's digits, or the name.
    pub fn text(&self) -> String {
        match self {
            ColumnRef::Number(n) => n.to_string(),
            ColumnRef::Name(s) => s.clone(),
        }
    }
}

/// What a bad line of a feed (or an imported CSV) does.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadLine {
    /// The whole body (or file) is refused, naming the line.
    #[default]
    Refuse,
    /// The line is left out, counted and reported (file or URL, line, reason).
    Skip,
}

/// What to do with a source that has no usable content at all.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSourceFailure {
    /// Refuse the policy: `embargo run` exits with 64 at start, a reload keeps the old policy.
    #[default]
    Refuse,
    /// The source contributes nothing, with a warning and a line in the report.
    Skip,
}

/// Where `embargo run` serves `/metrics`, `/healthz` and `/readyz` (see [`crate::observe::metrics`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// `ADDRESS:PORT` to listen on (default [`MetricsSettings::DEFAULT_LISTEN`], loopback only).
    /// `embargo run --metrics-listen` overrides it.
    pub listen: SocketAddr,
}

impl MetricsSettings {
    /// Loopback: the endpoints are for a local Prometheus or an agent that forwards them.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9610);
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: Self::DEFAULT_LISTEN,
        }
    }
}

/// Where `embargo run` writes drop and monitor events, and how many the data plane sends
/// (see [`crate::observe::events`]). Output, path and rotation are read at start; the rate and burst
/// also on every reload.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// `file` (default), `stdout` or `none` (the data plane sends no events at all).
    /// `embargo run --events-log PATH` implies `file`.
    pub output: EventsOutput,
    /// The JSON-lines file for `output = "file"`, relative to the main file; default
    /// [`EventsSettings::DEFAULT_PATH`]. `embargo run --events-log` overrides it.
    pub path: Option<Spanned<String>>,
    /// Size at which the file is rotated (`events.jsonl` -> `events.jsonl.1` -> ...), bytes;
    /// no file grows past it unless a single line does. Default 100 MiB, at least 4096.
    #[serde(deserialize_with = "at_least_4096")]
    pub max_bytes: u64,
    /// Rotated files kept (`events.jsonl.1` is the newest); older ones are deleted. Default 5;
    /// 0 keeps none (the file starts over).
    #[serde(deserialize_with = "keep_range")]
    pub keep: u32,
    /// Events per second each entity may send over all CPUs (the agent divides it into per-CPU
    /// budgets refilled once a second, see [`embargo_abi::EventLimits`]), 1 to 1,000,000;
    /// default 100. Packets over it are counted in `embargo_events_lost_total`.
    #[serde(deserialize_with = "rate_range")]
    pub rate_per_entity: u32,
    /// Events an entity may send back to back after an idle spell (unused budget saved up to
    /// it, at least `rate_per_entity` in effect), 1 to 1,000,000; default 100.
    #[serde(deserialize_with = "burst_range")]
    pub burst: u32,
}

/// Where events go.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventsOutput {
    /// JSON lines in [`EventsSettings::path`], rotated by size (the default).
    #[default]
    File,
    /// JSON lines on standard output (logs go to standard error).
    Stdout,
    /// Nowhere: the data plane sends none (and counts none lost).
    None,
}

impl EventsSettings {
    /// Where the event log goes unless configured.
    pub const DEFAULT_PATH: &str = "/var/lib/embargo/events.jsonl";
    pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;
    pub const DEFAULT_KEEP: u32 = 5;
    pub const DEFAULT_RATE: u32 = 100;
    pub const DEFAULT_BURST: u32 = 100;

    /// The event limits the data plane gets: off with `output = "none"`.
    pub fn limits(&self) -> embargo_abi::EventLimits {
        match self.output {
            EventsOutput::None => embargo_abi::EventLimits::OFF,
            _ => embargo_abi::EventLimits::per_second(self.rate_per_entity, self.burst),
        }
    }
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            output: EventsOutput::default(),
            path: None,
            max_bytes: Self::DEFAULT_MAX_BYTES,
            keep: Self::DEFAULT_KEEP,
            rate_per_entity: Self::DEFAULT_RATE,
            burst: Self::DEFAULT_BURST,
        }
    }
}

/// A number within `range`, else a message naming the field's limits.
fn in_range<'de, D, T>(
    d: D,
    range: std::ops::RangeInclusive<u64>,
    what: &str,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error as _;
    let n = u64::deserialize(d)?;
    if !range.contains(&n) {
        return Err(D::Error::custom(format!(
            "{what} must be from {} to {}, not {n}",
            range.start(),
            range.end()
        )));
    }
    T::try_from(n).map_err(|_| D::Error::custom(format!("{what}: {n} is too large")))
}

fn at_least_4096<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    in_range(d, 4096..=u64::MAX, "max_bytes")
}

fn keep_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, 0..=1000, "keep")
}

fn rate_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, 1..=1_000_000, "rate_per_entity")
}

fn broadest_v4_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    in_range(
        d,
        1..=32,
        "broadest_v4 (a prefix length; /0 always needs guard_override)",
    )
}

fn broadest_v6_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    in_range(
        d,
        1..=128,
        "broadest_v6 (a prefix length; /0 always needs guard_override)",
    )
}

fn burst_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, 1..=1_000_000, "burst")
}

/// A prefix that is never blocked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    pub prefix: Spanned<String>,
    /// Why (shown by `embargo why` and in reports).
    pub reason: String,
}

/// Refusals of dangerous input. Each can be overridden, explicitly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guard {
    /// Broadest IPv4 prefix accepted without a group-level `guard_override` (default 8: /8),
    /// 1 to 32: a default route (`/0`) always needs the override.
    #[serde(deserialize_with = "broadest_v4_range")]
    pub broadest_v4: u8,
    /// Broadest IPv6 prefix accepted without a group-level `guard_override` (default 19),
    /// 1 to 128.
    #[serde(deserialize_with = "broadest_v6_range")]
    pub broadest_v6: u8,
    /// Most prefixes the compiled table may hold (default 5,000,000).
    pub max_prefixes: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Self {
            broadest_v4: 8,
            broadest_v6: 19,
            max_prefixes: 5_000_000,
        }
    }
}

/// One interface the XDP program attaches to.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Kernel interface name, e.g. `eth0`.
    pub name: String,
    /// Which address of a received packet is matched.
    pub role: Role,
    /// How to attach the program.
    #[serde(default)]
    pub mode: XdpMode,
    /// Also enforce host egress: a TC classifier at the interface's egress matches the
    /// destinations of the packets the host itself sends out of it (direction outbound), with
    /// the same policy and counters. Only on `outside` interfaces ([`Interface::validate`]);
    /// default false.
    #[serde(default)]
    pub egress: bool,
}

impl Interface {
    /// What the fields cannot say alone: egress is enforced only on `outside` interfaces (an
    /// `inside` one already matches the destinations of the packets it receives, and the
    /// host's own packets leave through the outside).
    pub fn validate(&self) -> Result<(), ValueError> {
        if self.egress && self.role != Role::Outside {
            return Err(ValueError::EgressNotOutside {
                name: self.name.clone(),
                role: self.role,
            });
        }
        Ok(())
    }
}

/// Interface role; see [`embargo_abi::IfaceRole`].
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Faces the protected network: packets received here leave it; the destination is matched.
    Inside,
    /// Faces the world: packets received here come from it; the source is matched.
    Outside,
}

impl Role {
    pub fn abi(self) -> embargo_abi::IfaceRole {
        match self {
            Role::Inside => embargo_abi::IfaceRole::Inside,
            Role::Outside => embargo_abi::IfaceRole::Outside,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Inside => "inside",
            Role::Outside => "outside",
        })
    }
}

/// XDP attach mode.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic mode with a log line.
    #[default]
    Auto,
    /// Native mode only; fail if the driver lacks XDP support.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Generic,
}

// ---------------------------------------------------------------------------------------------
// Entities.

/// A designated entity: one per entity file, or inline in the main file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityDef {
    /// Stable slug, e.g. `integrity-tech`; used in metrics, logs and `embargo why`.
    pub id: Spanned<String>,
    /// Legal name.
    pub name: String,
    /// Other names it is known by.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Its designations; only those by an enforced authority, not delisted, count.
    #[serde(default)]
    pub designations: Vec<Designation>,
    /// `drop` or `monitor` (count and pass).
    pub action: Action,
    /// Which directions the action applies to.
    #[serde(default)]
    pub direction: DirectionSet,
    /// Groups of network identifiers, each with its evidence.
    #[serde(default)]
    pub networks: Vec<NetworkGroup>,
}

/// A designation by one authority.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Designation {
    /// `UK`, `US`, `EU`, `UN`, or another authority by name.
    pub authority: String,
    /// The legal regime, e.g. `Cyber (Sanctions) (EU Exit) Regulations 2020`.
    pub regime: String,
    /// The list reference: UK Sanctions List ID (`CYB0114`), OFAC `ent_num` or program tag,
    /// EU reference.
    pub reference: String,
    pub listed_on: Date,
    /// Where the designation is published.
    pub source: String,
    /// Set when the entity was removed from the list; enforcement ends then.
    #[serde(default)]
    pub delisted_on: Option<Date>,
    /// A `[[lists]]` name: `reference` is then looked up in that list on every compile. Found,
    /// the list's regime and date are shown; missing, the designation counts as delisted from
    /// the list's publication date (else the file's modification date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<Spanned<String>>,
    /// The entity's websites as this designation's list states them (UK `Website`); shown by
    /// `embargo why`, never enforced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub websites: Vec<String>,
    /// What the designation imposes, as its list states it (UK `Sanctions Imposed`, e.g.
    /// `Asset freeze|Trust Services Sanctions`); shown by `embargo why`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanctions_imposed: Option<String>,
    /// The authority's statement of reasons (UK `UK Statement of Reasons`); shown by
    /// `embargo why`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_of_reasons: Option<String>,
}

/// What happens to a matching packet.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Drop,
    Monitor,
}

/// Directions an entity's action applies to.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectionSet {
    /// Packets leaving the protected network (destination matched on `inside` interfaces).
    Outbound,
    /// Packets entering it (source matched on `outside` interfaces).
    Inbound,
    #[default]
    Both,
}

impl DirectionSet {
    /// The bit set in [`embargo_abi::EntityPolicy::directions`].
    pub fn bits(self) -> u8 {
        use embargo_abi::Direction;
        match self {
            DirectionSet::Outbound => Direction::Outbound.bit(),
            DirectionSet::Inbound => Direction::Inbound.bit(),
            DirectionSet::Both => Direction::Outbound.bit() | Direction::Inbound.bit(),
        }
    }
}

/// Network identifiers that share one piece of evidence.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkGroup {
    /// What the group is called in counters, metrics (`embargo_packets_total{evidence=...}`),
    /// `embargo status` and events: a slug (lowercase letters, digits, `-`, `_`), unique within
    /// the entity. Default: none, and the group is called by its evidence's `source`.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// IPv4 and IPv6 CIDRs and single addresses.
    #[serde(default)]
    pub prefixes: Vec<Spanned<String>>,
    /// Autonomous system numbers, resolved through the main file's `asn_table`. The group's
    /// evidence must be of kind `routing`.
    #[serde(default)]
    pub asn: Vec<Spanned<u32>>,
    /// Whole jurisdictions (ISO 3166-1 alpha-2 codes, uppercase, e.g. `KP`), resolved through
    /// the main file's `country_table`: for comprehensive, country-level sanctions programs.
    /// The group's evidence must be of kind `jurisdiction`.
    #[serde(default)]
    pub countries: Vec<Spanned<String>>,
    /// Indicator files (one CIDR or address per line, `#` comments), relative to the file
    /// that names them.
    #[serde(default)]
    pub files: Vec<Spanned<String>>,
    /// Remote sources (`[[sources]]` names in the main file), read from their last-known-good
    /// copies.
    #[serde(default)]
    pub sources: Vec<Spanned<String>>,
    /// Why these addresses belong to the entity.
    pub evidence: Evidence,
    /// Accept prefixes broader than the guard's limits, and prefixes in special-purpose ranges
    /// ([`crate::policy::special`]: private, loopback, documentation, ...), in this group; the
    /// text says why.
    #[serde(default)]
    pub guard_override: Option<String>,
}

/// The evidence linking a group of addresses to an entity.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub kind: Spanned<EvidenceKind>,
    /// URL or document the addresses come from.
    pub source: String,
    /// When this project retrieved it.
    pub retrieved: Date,
    pub confidence: Confidence,
    /// The evidence counts from this date (inclusive, from 00:00 UTC) or instant (RFC 3339):
    /// the group is not enforced before it. Default: no start (counts at once). `embargo import
    /// stix` sets it from the indicator's `valid_from`.
    #[serde(default)]
    pub valid_from: Option<When>,
    /// The evidence stops counting on this date (from 00:00 UTC) or at this instant (RFC 3339).
    #[serde(default)]
    pub expires: Option<When>,
    /// Or: it stops counting this long after `retrieved` (e.g. `90days`, `26weeks`).
    #[serde(default)]
    pub max_age: Option<Spanned<String>>,
    /// Free text for auditors.
    #[serde(default)]
    pub note: Option<String>,
}

impl NetworkGroup {
    /// What the group is called in counters, metrics, status and events: its `name`, else its
    /// evidence's `source` (both from the configuration, so a bounded set).
    pub fn label(&self) -> &str {
        self.name
            .as_ref()
            .map_or(self.evidence.source.as_str(), |n| n.get_ref().as_str())
    }
}

/// Where evidence comes from.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceKind {
    /// Registry allocation (RIR whois): long-lived, entity-owned netblocks.
    Registry,
    /// Routing data (announced by the entity's ASN).
    Routing,
    /// A government or vendor advisory or IOC publication: often compromised or rented hosts.
    Advisory,
    /// Entered by an operator.
    Manual,
    /// A country-level program: the addresses are a jurisdiction's, per the country table.
    /// Required for, and only for, groups with `countries`.
    Jurisdiction,
}

impl EvidenceKind {
    /// The name as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            EvidenceKind::Registry => "registry",
            EvidenceKind::Routing => "routing",
            EvidenceKind::Advisory => "advisory",
            EvidenceKind::Manual => "manual",
            EvidenceKind::Jurisdiction => "jurisdiction",
        }
    }
}

/// How sure the source is.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// A date or date-time as TOML gives it: a TOML datetime value, or a string to parse.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDate {
    Toml(toml::value::Datetime),
    Text(String),
}

/// A calendar date, written as a TOML date (`2025-12-09`) or a string of that form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Date(pub NaiveDate);

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let text = match RawDate::deserialize(d)? {
            RawDate::Toml(dt) => {
                if dt.time.is_some() || dt.offset.is_some() {
                    return Err(D::Error::custom(
                        "expected a date like 2025-12-09, without a time",
                    ));
                }
                dt.to_string()
            }
            RawDate::Text(s) => s,
        };
        NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map(Date)
            .map_err(|_| D::Error::custom(format!("`{text}` is not a date like 2025-12-09")))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A date or an instant, where evidence dates are written: a date (`2026-12-09`, a TOML date
/// or a string) stands for the start of that day in UTC, as every date in the configuration
/// does; an instant is an RFC 3339 timestamp with a `Z` or an offset (`2026-12-09T14:30:00Z`,
/// a TOML offset date-time or a string). Compared by the instant they start at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum When {
    /// A whole day: from its 00:00 UTC.
    Day(NaiveDate),
    /// An instant.
    Instant(chrono::DateTime<chrono::Utc>),
}

impl When {
    /// The instant it stands for: a day's 00:00 UTC, or the instant itself.
    pub fn start(self) -> chrono::DateTime<chrono::Utc> {
        match self {
            When::Day(d) => d.and_time(chrono::NaiveTime::MIN).and_utc(),
            When::Instant(t) => t,
        }
    }

    /// The UTC day it falls on.
    pub fn day(self) -> NaiveDate {
        match self {
            When::Day(d) => d,
            When::Instant(t) => t.date_naive(),
        }
    }
}

impl From<Date> for When {
    fn from(d: Date) -> Self {
        When::Day(d.0)
    }
}

impl PartialOrd for When {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for When {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.start().cmp(&other.start())
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Day(d) => d.fmt(f),
            When::Instant(t) => {
                f.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }
        }
    }
}

impl Serialize for When {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for When {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(When::Day(d));
        }
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| When::Instant(t.with_timezone(&chrono::Utc)))
            .map_err(|_| {
                format!(
                    "`{text}` is not a date like 2025-12-09 or an RFC 3339 instant like 2025-12-09T14:30:00Z"
                )
            })
    }
}

impl<'de> Deserialize<'de> for When {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let text = match RawDate::deserialize(d)? {
            RawDate::Toml(dt) => {
                if dt.time.is_some() && dt.offset.is_none() {
                    return Err(D::Error::custom(format!(
                        "`{dt}` has no time zone; write it in UTC with a Z (e.g. 2025-12-09T14:30:00Z) or with an offset"
                    )));
                }
                dt.to_string()
            }
            RawDate::Text(s) => s,
        };
        text.parse().map_err(D::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and locations.

/// A place in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A value that does not parse, or is not allowed where it is written. It does not know where it
/// was written: the caller places it ([`SourceFile::invalid`], an import's line, a flag).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// Has a `/` but is not a CIDR prefix.
    #[error("`{text}` is not a CIDR prefix ({source}); write e.g. 192.0.2.0/24 or 2001:db8::/32")]
    NotCidr {
        text: String,
        #[source]
        source: ipnetwork::IpNetworkError,
    },
    /// Neither an address nor a CIDR prefix.
    #[error("`{text}` is not an IP address or CIDR; write e.g. 192.0.2.1 or 192.0.2.0/24")]
    NotAddress { text: String },
    /// A prefix with bits set past its length.
    #[error("`{text}` has host bits set; did you mean {network}/{prefix}?")]
    HostBits {
        text: String,
        network: std::net::IpAddr,
        prefix: u8,
    },
    /// A `max_age` that is not a duration.
    #[error("max_age `{text}` is not a duration ({source}); write e.g. \"90days\" or \"26weeks\"")]
    NotDuration {
        text: String,
        #[source]
        source: humantime::DurationError,
    },
    /// A `max_age` shorter than the day evidence is counted in.
    #[error("max_age `{text}` is under a day; use at least \"1day\"")]
    UnderADay { text: String },
    /// `egress = true` on an interface that is not `outside`.
    #[error(
        "interface `{name}`: egress is only for `outside` interfaces, this one is {role}; \
         enable egress on the interface that faces the world, or remove it here"
    )]
    EgressNotOutside { name: String, role: Role },
    /// A name that must be a slug (`what`: "entity id", "list name", "source name").
    #[error("{what} `{name}` must be a slug: lowercase letters, digits, `-` and `_`")]
    NotSlug { what: &'static str, name: String },
}

/// Why a configuration was refused. Every variant says where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}; check the path and its permissions")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_FILE_BYTES`].
    #[error("{path}: the file is {size} bytes, over the {max}-byte limit; is this the right file?")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    /// A file is not UTF-8.
    #[error("{path}: line {line} is not UTF-8 text; save the file as UTF-8")]
    NotUtf8 { path: PathBuf, line: usize },
    /// TOML syntax or schema error (unknown field, wrong type, missing field).
    #[error("{at}: {message}")]
    Parse { at: Location, message: String },
    /// A semantic error at a known place.
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
}

impl ConfigError {
    /// An [`ConfigError::Invalid`] at column 1 of `line` of `path`: the one constructor for
    /// errors in files read line by line (indicator files, range tables, source copies).
    pub fn at_line(path: &Path, line: usize, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            at: Location {
                file: path.to_owned(),
                line,
                column: 1,
            },
            message: message.into(),
        }
    }
}

/// Maps a byte offset to a 1-based line and column. Counts from the start: for one place
/// only; a parser that names many places builds a [`crate::files::read::LineIndex`] once.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    crate::files::read::LineIndex::new(text).line_col(text, offset)
}

/// One file read, its text kept for error locations.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    /// Where its lines start, built once: locating every prefix of a large group stays linear.
    lines: crate::files::read::LineIndex,
}

impl SourceFile {
    /// A file read from `path` with `text`.
    pub fn new(path: PathBuf, text: String) -> Self {
        let lines = crate::files::read::LineIndex::new(&text);
        Self { path, text, lines }
    }

    /// The location of byte `offset` in this file.
    pub fn at(&self, offset: usize) -> Location {
        let (line, column) = self.lines.line_col(&self.text, offset);
        Location {
            file: self.path.clone(),
            line,
            column,
        }
    }

    /// An [`ConfigError::Invalid`] at `offset`.
    pub fn invalid(&self, offset: usize, message: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            at: self.at(offset),
            message: message.to_string(),
        }
    }
}

impl From<crate::files::read::InputError> for ConfigError {
    fn from(e: crate::files::read::InputError) -> Self {
        use crate::files::read::InputError as E;
        match e {
            E::Io { path, source } => ConfigError::Read { path, source },
            E::NotRegular { path, kind } => ConfigError::Read {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("it is {kind}, not a regular file"),
                ),
            },
            E::TooLarge { path, size, max } => ConfigError::TooLarge { path, size, max },
            E::NotUtf8 { path, line } => ConfigError::NotUtf8 { path, line },
        }
    }
}

/// Reads a text file from outside (configuration, entity, list, table, indicator or import
/// file) through [`crate::files::read::read_text`]: a regular file only, at most [`MAX_FILE_BYTES`],
/// UTF-8, without its byte-order mark.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    Ok(crate::files::read::read_text(path, MAX_FILE_BYTES)?)
}

/// As [`read_text`], with the SHA-256 of the bytes read
/// ([`crate::files::read::read_text_hashed`]).
pub fn read_text_hashed(path: &Path) -> Result<(String, String), ConfigError> {
    Ok(crate::files::read::read_text_hashed(path, MAX_FILE_BYTES)?)
}

fn parse_toml<T: serde::de::DeserializeOwned>(file: &SourceFile) -> Result<T, ConfigError> {
    toml::from_str(&file.text).map_err(|e| ConfigError::Parse {
        at: file.at(e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Index of a file in [`Config::files`].
pub type FileId = usize;

/// An entity and the file it was read from.
#[derive(Debug)]
pub struct EntitySource {
    pub file: FileId,
    pub def: EntityDef,
}

/// A whole configuration: the main file, every entity, and the files they came from.
#[derive(Debug)]
pub struct Config {
    /// `files[0]` is the main file.
    pub files: Vec<SourceFile>,
    pub main: MainFile,
    /// Inline entities first, then included files in order.
    pub entities: Vec<EntitySource>,
}

impl Config {
    pub fn main_file(&self) -> &SourceFile {
        &self.files[0]
    }

    /// Resolves `rel` against the folder of file `file`.
    pub fn relative(&self, file: FileId, rel: &str) -> PathBuf {
        let base = self.files[file].path.parent().unwrap_or(Path::new("."));
        base.join(rel)
    }
}

/// Reads the main file at `path` and every entity file it includes.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read_text(path)?;
    parse(path, text)
}

/// As [`load`], with the main file's text already read.
pub fn parse(path: &Path, text: String) -> Result<Config, ConfigError> {
    let main_file = SourceFile::new(path.to_owned(), text);
    let mut main: MainFile = parse_toml(&main_file)?;
    for i in &main.interfaces {
        i.get_ref()
            .validate()
            .map_err(|message| main_file.invalid(i.span().start, message))?;
    }
    let mut files = vec![main_file];
    let mut entities: Vec<EntitySource> = std::mem::take(&mut main.entities)
        .into_iter()
        .map(|def| EntitySource { file: 0, def })
        .collect();
    for inc in &main.include {
        let target = files[0]
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .join(inc.get_ref());
        let paths = include_paths(&target)
            .map_err(|message| files[0].invalid(inc.span().start, message))?;
        for p in paths {
            let text = read_text(&p)?;
            let file = SourceFile::new(p, text);
            let def = parse_entity(&file)?;
            files.push(file);
            entities.push(EntitySource {
                file: files.len() - 1,
                def,
            });
        }
    }
    Ok(Config {
        files,
        main,
        entities,
    })
}

/// Parses one entity file's text as an `include` reads it (`file.path` names it in errors): the
/// pure entry point for a single entity file (the fuzz targets use it).
pub fn parse_entity(file: &SourceFile) -> Result<EntityDef, ConfigError> {
    parse_toml(file)
}

/// The entity files an `include` entry names: the file itself, or a folder's `*.toml` entries
/// in name order. Every such entry is returned whatever it is (a dangling symlink, a symlink
/// loop, a FIFO, a folder): reading it then refuses the configuration at its path, so an
/// entity file that cannot be read is never skipped without a word.
fn include_paths(target: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = fs::metadata(target).map_err(|e| {
        format!(
            "included path {} cannot be read ({e}); fix the path or remove the include",
            target.display()
        )
    })?;
    if !meta.is_dir() {
        return Ok(vec![target.to_owned()]);
    }
    let unreadable =
        |e: std::io::Error| format!("included folder {} cannot be read ({e})", target.display());
    let mut paths = Vec::new();
    for entry in fs::read_dir(target).map_err(unreadable)? {
        let p = entry.map_err(unreadable)?.path();
        if p.extension().is_some_and(|x| x == "toml") {
            paths.push(p);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Parses one prefix: a CIDR or a single address, host bits clear.
pub fn parse_prefix(text: &str) -> Result<IpNetwork, ValueError> {
    let text = text.trim();
    let net: IpNetwork = if text.contains('/') {
        text.parse().map_err(|source| ValueError::NotCidr {
            text: text.to_owned(),
            source,
        })?
    } else {
        let ip: std::net::IpAddr = text.parse().map_err(|_| ValueError::NotAddress {
            text: text.to_owned(),
        })?;
        IpNetwork::from(ip)
    };
    if net.network() != net.ip() {
        return Err(ValueError::HostBits {
            text: text.to_owned(),
            network: net.network(),
            prefix: net.prefix(),
        });
    }
    Ok(net)
}

/// Parses a `max_age` such as `90days` or `26weeks` into whole days.
pub fn parse_max_age(text: &str) -> Result<i64, ValueError> {
    let d = humantime::parse_duration(text.trim()).map_err(|source| ValueError::NotDuration {
        text: text.to_owned(),
        source,
    })?;
    let days = d.as_secs() / 86_400;
    if days == 0 {
        return Err(ValueError::UnderADay {
            text: text.to_owned(),
        });
    }
    Ok(days as i64)
}

/// Authorities written differently are the same authority: compare them case-insensitively.
pub fn authority_key(a: &str) -> String {
    a.trim().to_ascii_uppercase()
}

/// The set of enforced authorities, normalized.
pub fn enforced(main: &MainFile) -> BTreeMap<String, String> {
    main.enforce
        .iter()
        .map(|a| (authority_key(a.get_ref()), a.get_ref().clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed value errors say what the strings said before them.
    #[test]
    fn value_errors_keep_their_messages() {
        let host_bits = parse_prefix("10.0.0.1/8").unwrap_err();
        assert!(matches!(host_bits, ValueError::HostBits { prefix: 8, .. }));
        assert_eq!(
            host_bits.to_string(),
            "`10.0.0.1/8` has host bits set; did you mean 10.0.0.0/8?"
        );
        assert_eq!(
            parse_prefix("192.0.2.300").unwrap_err().to_string(),
            "`192.0.2.300` is not an IP address or CIDR; write e.g. 192.0.2.1 or 192.0.2.0/24"
        );
        assert!(matches!(
            parse_prefix("10.0.0.0/33"),
            Err(ValueError::NotCidr { .. })
        ));
        assert_eq!(
            parse_max_age("1h").unwrap_err().to_string(),
            "max_age `1h` is under a day; use at least \"1day\""
        );
        assert!(matches!(
            parse_max_age("soon"),
            Err(ValueError::NotDuration { .. })
        ));
    }

    fn main_with(interfaces: &str) -> Result<Config, ConfigError> {
        parse(
            Path::new("main.toml"),
            format!("enforce = [\"UK\"]\n{interfaces}"),
        )
    }

    #[test]
    fn egress_defaults_off_and_is_accepted_on_outside() {
        let c = main_with(
            "[[interfaces]]\nname = \"eth1\"\nrole = \"inside\"\n\
             [[interfaces]]\nname = \"eth0\"\nrole = \"outside\"\negress = true\n",
        )
        .unwrap();
        let egress: Vec<(&str, bool)> = c
            .main
            .interfaces
            .iter()
            .map(|i| (i.get_ref().name.as_str(), i.get_ref().egress))
            .collect();
        assert_eq!(egress, [("eth1", false), ("eth0", true)]);
    }

    #[test]
    fn the_full_example_enforces_egress_on_its_outside_interface() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/full.toml");
        let c = load(&path).unwrap();
        let egress: Vec<(&str, Role, bool)> = c
            .main
            .interfaces
            .iter()
            .map(|i| {
                (
                    i.get_ref().name.as_str(),
                    i.get_ref().role,
                    i.get_ref().egress,
                )
            })
            .collect();
        assert_eq!(
            egress,
            [("eth1", Role::Inside, false), ("eth0", Role::Outside, true)]
        );
    }

    #[test]
    fn egress_on_inside_is_refused_at_its_interface() {
        let text = "[[interfaces]]\nname = \"eth0\"\nrole = \"outside\"\n\
                    [[interfaces]]\nname = \"eth1\"\nrole = \"inside\"\negress = true\n";
        let err = main_with(text).unwrap_err();
        let ConfigError::Invalid { at, message } = &err else {
            panic!("expected a located parse error, got {err:?}");
        };
        assert_eq!(at.file, Path::new("main.toml"));
        // The second [[interfaces]] table's header.
        assert_eq!((at.line, at.column), (5, 1), "{err}");
        assert!(
            message.contains("`eth1`") && message.contains("only for `outside`"),
            "{err}"
        );
    }
}
