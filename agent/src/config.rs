//! The configuration file: interfaces with roles, entities with prefixes and actions.
//!
//! TOML read with serde and `deny_unknown_fields`. Every error names the file, line and column
//! and says what to do; nothing from a file that fails is used.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
};

use ipnetwork::IpNetwork;
use serde::Deserialize;
use toml::Spanned;

/// Largest configuration file read, so a wrong path (a disk image, a log) fails fast.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// The whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Interfaces to attach to. `embargo run --interface` adds to or overrides these.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Designated entities and their network prefixes.
    #[serde(default)]
    pub entities: Vec<Entity>,
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
}

/// Interface role; see [`embargo_abi::Role`].
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Faces the protected network: packets received here leave it; the destination is matched.
    Inside,
    /// Faces the world: packets received here come from it; the source is matched.
    Outside,
}

impl Role {
    pub fn abi(self) -> embargo_abi::Role {
        match self {
            Role::Inside => embargo_abi::Role::Inside,
            Role::Outside => embargo_abi::Role::Outside,
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
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
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

/// A designated entity (the minimal model; designations and evidence come with the policy
/// compiler).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    /// Stable slug, e.g. `integrity-tech`; used in metrics and logs.
    pub id: Spanned<String>,
    /// Legal name.
    pub name: String,
    /// `drop` or `monitor` (count and pass).
    pub action: Action,
    /// Which directions the action applies to.
    #[serde(default)]
    pub direction: DirectionSet,
    /// IPv4 and IPv6 CIDRs or single addresses.
    #[serde(default)]
    pub prefixes: Vec<Spanned<String>>,
}

/// What happens to a matching packet.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Drop,
    Monitor,
}

/// Directions an entity's action applies to.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
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

/// Why a configuration was refused. Every variant says where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the configuration: {source}; check the path and its permissions")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("{path}: the file is {size} bytes, over the {max}-byte limit; is this the right file?")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    /// The file is not UTF-8.
    #[error("{path}: the file is not UTF-8 text; save it as UTF-8")]
    NotUtf8 { path: PathBuf },
    /// TOML syntax or schema error (unknown field, wrong type, missing field).
    #[error("{at}: {message}")]
    Parse { at: Location, message: String },
    /// A semantic error at a known place.
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
}

impl ConfigError {
    /// Process exit code for a refused configuration (EX_USAGE-style, as linkerd uses).
    pub const EXIT_CODE: i32 = 64;
}

/// Maps a byte offset to a 1-based line and column.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A configuration file read and parsed, with its text kept for error locations.
pub struct Loaded {
    pub path: PathBuf,
    pub text: String,
    pub config: Config,
}

impl Loaded {
    /// The location of byte `offset` in this file.
    pub fn at(&self, offset: usize) -> Location {
        let (line, column) = line_col(&self.text, offset);
        Location {
            file: self.path.clone(),
            line,
            column,
        }
    }
}

/// Reads and parses `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let meta = fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            size: meta.len(),
            max: MAX_CONFIG_BYTES,
        });
    }
    let bytes = fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
        path: path.to_owned(),
    })?;
    parse(path, text)
}

/// Parses configuration text that came from `path`.
pub fn parse(path: &Path, text: String) -> Result<Loaded, ConfigError> {
    match toml::from_str::<Config>(&text) {
        Ok(config) => Ok(Loaded {
            path: path.to_owned(),
            text,
            config,
        }),
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column) = line_col(&text, offset);
            Err(ConfigError::Parse {
                at: Location {
                    file: path.to_owned(),
                    line,
                    column,
                },
                message: e.message().trim().to_owned(),
            })
        }
    }
}

/// Parses one prefix: a CIDR or a single address, host bits clear.
pub fn parse_prefix(text: &str) -> Result<IpNetwork, String> {
    let text = text.trim();
    let net: IpNetwork = if text.contains('/') {
        text.parse().map_err(|e| {
            format!("`{text}` is not a CIDR prefix ({e}); write e.g. 192.0.2.0/24 or 2001:db8::/32")
        })?
    } else {
        let ip: std::net::IpAddr = text.parse().map_err(|_| {
            format!("`{text}` is not an IP address or CIDR; write e.g. 192.0.2.1 or 192.0.2.0/24")
        })?;
        IpNetwork::from(ip)
    };
    if net.network() != net.ip() {
        return Err(format!(
            "`{text}` has host bits set; did you mean {}/{}?",
            net.network(),
            net.prefix()
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Loaded, ConfigError> {
        parse(Path::new("test.toml"), text.to_owned())
    }

    #[test]
    fn parses_minimal_config() {
        let l = parse_str(
            r#"
[[interfaces]]
name = "eth0"
role = "inside"

[[entities]]
id = "a"
name = "A"
action = "drop"
prefixes = ["192.0.2.0/24", "2001:db8::1"]
"#,
        )
        .unwrap();
        assert_eq!(l.config.interfaces[0].mode, XdpMode::Auto);
        assert_eq!(l.config.entities[0].direction, DirectionSet::Both);
        assert_eq!(l.config.entities[0].prefixes.len(), 2);
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let err = parse_str("[[interfaces]]\nname = \"eth0\"\nrole = \"inside\"\ncolour = 1\n")
            .err()
            .unwrap();
        let ConfigError::Parse { at, message } = err else {
            panic!("wrong error")
        };
        assert_eq!((at.line, at.column), (4, 1));
        assert!(message.contains("colour"), "{message}");
    }

    #[test]
    fn bad_role_is_refused() {
        let err = parse_str("[[interfaces]]\nname = \"eth0\"\nrole = \"sideways\"\n")
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("test.toml:3:"), "{err}");
    }

    #[test]
    fn prefixes_parse_strictly() {
        assert_eq!(
            parse_prefix("192.0.2.1").unwrap(),
            "192.0.2.1/32".parse::<IpNetwork>().unwrap()
        );
        assert!(
            parse_prefix("192.0.2.1/24")
                .unwrap_err()
                .contains("192.0.2.0/24")
        );
        assert!(parse_prefix("192.0.2.0/33").is_err());
        assert!(parse_prefix("not-an-ip").is_err());
        assert_eq!(parse_prefix("2001:db8::/32").unwrap().prefix(), 32);
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
