//! Range tables: the IP-to-ASN and IP-to-country CSVs that `asn = [...]` and
//! `countries = [...]` resolve through.
//!
//! Both follow the layout of the `@ip-location-db` packages on the npm registry: no header
//! row (one named `ip_range_start` is skipped), one range per line,
//! `ip_range_start,ip_range_end,<key>[,...]` where the key is an AS number
//! (`@ip-location-db/asn`, with a quoted `as_organization` after it) or an ISO 3166-1 alpha-2
//! country code (`@ip-location-db/geo-whois-asn-country`). A table may be several files (the
//! packages ship IPv4 and IPv6 apart); each is read whole, its ranges grouped by key, the ranges
//! of one key merged where they touch or overlap and only then cut into CIDRs, so every key gets
//! the minimal CIDR set covering exactly its addresses.
//!
//! Every file has a version, shown by `embargo why`, the audit log and the evidence: the npm
//! `name@version` from a `package.json` next to it when there is one, its file name and its
//! SHA-256.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use ipnetwork::IpNetwork;

use crate::{
    config::{self, ConfigError},
    policy::cidr,
};

/// One file of a range table: its version and every key's minimal CIDRs.
#[derive(Debug)]
pub struct RangeFile<K> {
    pub path: PathBuf,
    /// `name@version <file> sha256:<hex>`, or `<path> sha256:<hex>` without a `package.json`.
    pub version: Arc<str>,
    /// Ranges read (data rows).
    pub ranges: usize,
    index: HashMap<K, Vec<IpNetwork>>,
}

/// A range table: one or more files, indexed by key once.
#[derive(Debug)]
pub struct RangeTable<K> {
    pub files: Vec<RangeFile<K>>,
}

impl<K: Eq + Hash> RangeTable<K> {
    /// Reads every file of a table. `key` parses the third column (its error says what is wrong).
    pub fn read(
        paths: &[PathBuf],
        key: impl Fn(&str) -> Result<K, KeyError> + Copy,
    ) -> Result<Self, ConfigError> {
        let files = paths
            .iter()
            .map(|p| {
                let text = config::read_text(p)?;
                RangeFile::parse(p, &text, version_of(p, &text)?, key)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { files })
    }

    /// The minimal CIDRs of `key`, with the version of the file each came from.
    pub fn prefixes(&self, key: &K) -> impl Iterator<Item = (IpNetwork, &Arc<str>)> {
        self.files.iter().flat_map(move |f| {
            f.index
                .get(key)
                .into_iter()
                .flatten()
                .map(move |n| (*n, &f.version))
        })
    }

    /// Every key with at least one range.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.files.iter().flat_map(|f| f.index.keys())
    }

    /// The versions of its files, joined with `; ` (for the audit log and reports).
    pub fn version(&self) -> String {
        self.files
            .iter()
            .map(|f| f.version.as_ref())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl<K: Eq + Hash> RangeFile<K> {
    /// Parses one file's text; `path` names it in errors.
    pub fn parse(
        path: &Path,
        text: &str,
        version: String,
        key: impl Fn(&str) -> Result<K, KeyError>,
    ) -> Result<Self, ConfigError> {
        let mut splitter = LineSplitter::default();
        let mut by_key: HashMap<K, Vec<(u128, u128, bool)>> = HashMap::new();
        let mut ranges = 0;
        for (i, text_line) in text.lines().enumerate() {
            let line = i + 1;
            let t = text_line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let record = splitter
                .split(t)
                .map_err(|m| invalid(path, line, format!("not a CSV row ({m})")))?;
            if record.len() < 3 {
                return Err(invalid(
                    path,
                    line,
                    format!(
                        "expected ip_range_start,ip_range_end,<key>, found {} column(s)",
                        record.len()
                    ),
                ));
            }
            if ranges == 0 && record[0] == "ip_range_start" {
                continue;
            }
            let addr = |s: &str| -> Result<IpAddr, ConfigError> {
                s.parse()
                    .map_err(|_| invalid(path, line, format!("`{s}` is not an IP address")))
            };
            let (start, end) = (addr(record[0])?, addr(record[1])?);
            if start.is_ipv4() != end.is_ipv4()
                || embargo_abi::addr::bits(start) > embargo_abi::addr::bits(end)
            {
                return Err(invalid(
                    path,
                    line,
                    format!(
                        "the range {start} - {end}: its end is before its start, or the two are of different address families"
                    ),
                ));
            }
            let k = key(record[2]).map_err(|e| invalid(path, line, e.to_string()))?;
            by_key.entry(k).or_default().push((
                embargo_abi::addr::bits(start),
                embargo_abi::addr::bits(end),
                start.is_ipv4(),
            ));
            ranges += 1;
        }
        let index = by_key
            .into_iter()
            .map(|(k, rs)| (k, minimal_cidrs(rs)))
            .collect();
        Ok(Self {
            path: path.to_owned(),
            version: Arc::from(version),
            ranges,
            index,
        })
    }

    /// Every key's CIDRs.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &[IpNetwork])> {
        self.index.iter().map(|(k, v)| (k, v.as_slice()))
    }
}

/// Splits one line into its CSV fields (quotes as RFC 4180 has them, fields trimmed), with one
/// `csv_core` reader reused for every line: building a reader costs more than reading a line,
/// and one reader over the whole text would miscount the lines of its errors (it skips blank
/// lines without counting them). The tables never quote a line break.
struct LineSplitter {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    text: String,
}

impl Default for LineSplitter {
    fn default() -> Self {
        // Not `csv_core::Reader::default()`, which has no delimiter configured.
        Self {
            reader: csv_core::ReaderBuilder::new().build(),
            out: Vec::new(),
            ends: Vec::new(),
            text: String::new(),
        }
    }
}

impl LineSplitter {
    fn split(&mut self, line: &str) -> Result<Vec<&str>, String> {
        use csv_core::ReadRecordResult as R;
        self.reader.reset();
        self.out.resize(line.len() + 16, 0);
        self.ends.resize(8, 0);
        let (mut input, mut nout, mut nends) = (line.as_bytes(), 0, 0);
        loop {
            let (res, nin, o, e) =
                self.reader
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nends..]);
            input = &input[nin..];
            nout += o;
            nends += e;
            match res {
                // Empty input next time is the end of the line.
                R::InputEmpty => {}
                R::OutputFull => self.out.resize(self.out.len() * 2, 0),
                R::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                R::Record | R::End => break,
            }
        }
        self.text = String::from_utf8(self.out[..nout].to_vec())
            .map_err(|_| "a field is not UTF-8".to_owned())?;
        let mut fields = Vec::with_capacity(nends);
        let mut start = 0;
        for &end in &self.ends[..nends] {
            fields.push(self.text[start..end].trim());
            start = end;
        }
        Ok(fields)
    }
}

fn from_u128(v4: bool, x: u128) -> IpAddr {
    if v4 {
        IpAddr::V4((x as u32).into())
    } else {
        IpAddr::V6(x.into())
    }
}

/// The minimal CIDR set covering exactly the union of `ranges` (`(start, end, is_ipv4)`,
/// inclusive): ranges that overlap or touch are merged first, then each merged range is cut
/// greedily, which is minimal for one range; merged ranges are apart, so no CIDR could span two.
pub fn minimal_cidrs(mut ranges: Vec<(u128, u128, bool)>) -> Vec<IpNetwork> {
    // IPv4 (true) after IPv6 (false) does not matter: families never merge.
    ranges.sort_unstable_by_key(|&(s, e, v4)| (v4, s, e));
    let mut merged: Vec<(u128, u128, bool)> = Vec::with_capacity(ranges.len());
    for (s, e, v4) in ranges {
        match merged.last_mut() {
            Some(last) if last.2 == v4 && s <= last.1.saturating_add(1) => {
                last.1 = last.1.max(e);
            }
            _ => merged.push((s, e, v4)),
        }
    }
    merged
        .into_iter()
        .flat_map(|(s, e, v4)| {
            cidr::range_to_cidrs(from_u128(v4, s), from_u128(v4, e)).expect("start <= end")
        })
        .collect()
}

/// The version of the table file at `path` with text `text`.
pub fn version_of(path: &Path, text: &str) -> Result<String, ConfigError> {
    let sha = crate::files::digest::sha256_hex(text.as_bytes());
    let manifest = path.with_file_name("package.json");
    if !manifest.is_file() {
        return Ok(format!("{} sha256:{sha}", path.display()));
    }
    #[derive(serde::Deserialize)]
    struct Package {
        name: String,
        version: String,
    }
    let json = config::read_text(&manifest)?;
    let p: Package = serde_json::from_str(&json).map_err(|e| {
        invalid(
            &manifest,
            e.line(),
            format!(
                "not an npm package.json with `name` and `version` ({e}); it names the version \
                 of the range table next to it: fix it or move it away"
            ),
        )
    })?;
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    Ok(format!("{}@{} {file} sha256:{sha}", p.name, p.version))
}

fn invalid(path: &Path, line: usize, message: String) -> ConfigError {
    ConfigError::at_line(path, line.max(1), message)
}

/// Why a range table's key column, or a country code in a configuration, was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not an AS number (`13335` or `AS13335`).
    #[error("`{0}` is not an AS number")]
    NotAsn(String),
    /// A country code written in lowercase in the configuration.
    #[error("country code `{given}` must be written in uppercase: \"{upper}\"")]
    NotUppercase { given: String, upper: String },
    /// Not an assigned ISO 3166-1 alpha-2 code.
    #[error(
        "`{0}` is not an ISO 3166-1 alpha-2 country code; write two uppercase letters, e.g. \"KP\" or \"IR\""
    )]
    NotIso(String),
    /// A country table's code that is not two letters.
    #[error("`{0}` is not a two-letter country code")]
    NotTwoLetters(String),
}

/// Parses an AS number column (`13335` or `AS13335`).
pub fn asn_key(s: &str) -> Result<u32, KeyError> {
    s.trim_start_matches("AS")
        .parse()
        .map_err(|_| KeyError::NotAsn(s.to_owned()))
}

/// Every ISO 3166-1 alpha-2 code officially assigned (the ISO 3166 Maintenance Agency's list,
/// 249 codes), sorted.
pub const ISO_3166_ALPHA2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Checks a country code as written in a configuration: two uppercase letters, assigned in
/// ISO 3166-1. The error says what to write.
pub fn country_code(s: &str) -> Result<[u8; 2], KeyError> {
    let upper = s.trim().to_ascii_uppercase();
    if upper.len() == 2 && ISO_3166_ALPHA2.binary_search(&upper.as_str()).is_ok() {
        if upper != s {
            return Err(KeyError::NotUppercase {
                given: s.to_owned(),
                upper,
            });
        }
        let b = upper.as_bytes();
        return Ok([b[0], b[1]]);
    }
    Err(KeyError::NotIso(s.to_owned()))
}

/// Parses a country table's code column: two ASCII letters (tables may carry codes outside
/// ISO 3166-1, such as `EU` or `ZZ`; they are kept, and reachable by nobody's `countries`).
pub fn country_key(s: &str) -> Result<[u8; 2], KeyError> {
    match s.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Ok([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => Err(KeyError::NotTwoLetters(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn n(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn v4(s: &str) -> u128 {
        u128::from(u32::from(s.parse::<Ipv4Addr>().unwrap()))
    }

    #[test]
    fn adjacent_halves_become_one_prefix() {
        let got = minimal_cidrs(vec![
            (v4("10.0.0.128"), v4("10.0.0.255"), true),
            (v4("10.0.0.0"), v4("10.0.0.127"), true),
        ]);
        assert_eq!(got, vec![n("10.0.0.0/24")]);
        // Overlapping ranges merge too; apart ones stay apart.
        let got = minimal_cidrs(vec![
            (v4("10.0.0.0"), v4("10.0.0.200"), true),
            (v4("10.0.0.100"), v4("10.0.1.255"), true),
            (v4("10.0.3.0"), v4("10.0.3.255"), true),
        ]);
        assert_eq!(got, vec![n("10.0.0.0/23"), n("10.0.3.0/24")]);
    }

    #[test]
    fn quoted_organisations_and_versions_are_read() {
        let text = "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
                    1.0.1.0,1.0.1.255,13335,\"Cloudflare, Inc.\"\n\
                    2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,64512,x\n";
        let f = RangeFile::parse(Path::new("t.csv"), text, "v".into(), asn_key).unwrap();
        assert_eq!(f.ranges, 3);
        assert_eq!(f.index[&13335], vec![n("1.0.0.0/23")]);
        assert_eq!(f.index[&64512], vec![n("2001:db8::/32")]);
        let err = RangeFile::parse(
            Path::new("t.csv"),
            "1.0.0.0,1.0.0.255,13335\n1.0.0.9,1.0.0.1,1\n",
            "v".into(),
            asn_key,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("t.csv:2:1: the range"), "{err}");
        let err = RangeFile::parse(
            Path::new("t.csv"),
            "\n\n1.0.0.0,1.0.0.255,X1\n",
            "v".into(),
            country_key,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("t.csv:3:1:") && err.contains("`X1`"),
            "{err}"
        );
    }

    #[test]
    fn the_version_names_the_npm_package_when_there_is_one() {
        let tmp = tempfile::Builder::new()
            .prefix("embargo-ranges-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let csv = dir.join("t.csv");
        assert_eq!(
            version_of(&csv, "x").unwrap(),
            format!(
                "{} sha256:{}",
                csv.display(),
                crate::files::digest::sha256_hex(b"x")
            )
        );
        std::fs::write(
            dir.join("package.json"),
            r#"{"name":"@scope/t","version":"1.2.3"}"#,
        )
        .unwrap();
        assert_eq!(
            version_of(&csv, "x").unwrap(),
            format!(
                "@scope/t@1.2.3 t.csv sha256:{}",
                crate::files::digest::sha256_hex(b"x")
            )
        );
    }

    #[test]
    fn country_codes_are_iso_and_uppercase() {
        assert!(ISO_3166_ALPHA2.is_sorted());
        assert_eq!(country_code("KP"), Ok(*b"KP"));
        assert!(
            country_code("kp")
                .unwrap_err()
                .to_string()
                .contains("uppercase: \"KP\"")
        );
        assert!(
            country_code("XX")
                .unwrap_err()
                .to_string()
                .contains("not an ISO 3166-1")
        );
        assert!(country_code("KOR").is_err());
    }

    /// The fewest CIDRs that cover exactly `set` (addresses 0..256 of 10.0.0.0/24): the aligned
    /// blocks inside it whose parent block is not.
    fn brute_force_count(set: &[bool; 256]) -> usize {
        let inside = |start: usize, size: usize| set[start..start + size].iter().all(|&b| b);
        let mut count = 0;
        for k in 0..=8 {
            let size = 1usize << k;
            for start in (0..256).step_by(size) {
                let parent = if size == 256 {
                    false
                } else {
                    inside(start & !(2 * size - 1), 2 * size)
                };
                if inside(start, size) && !parent {
                    count += 1;
                }
            }
        }
        count
    }

    proptest! {
        #[test]
        fn merged_cidrs_are_exact_and_minimal(ranges in prop::collection::vec((0u32..256, 0u32..16), 0..8)) {
            let base = v4("10.0.0.0");
            let mut set = [false; 256];
            let input: Vec<(u128, u128, bool)> = ranges
                .iter()
                .map(|&(s, len)| {
                    let e = (s + len).min(255);
                    for x in s..=e {
                        set[x as usize] = true;
                    }
                    (base + u128::from(s), base + u128::from(e), true)
                })
                .collect();
            let got = minimal_cidrs(input);
            for x in 0..256u32 {
                let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | x));
                let hits = got.iter().filter(|c| c.contains(ip)).count();
                prop_assert_eq!(hits, usize::from(set[x as usize]), "{}", ip);
            }
            prop_assert_eq!(got.len(), brute_force_count(&set));
        }
    }
}
