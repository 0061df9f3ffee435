//! Plain IOC text: one indicator per line, or addresses in free text (an advisory pasted as
//! text), with the defanged forms advisories use.
//!
//! Each line is refanged (`[.]`, `(.)`, `{.}`, `[dot]`, `(dot)` -> `.`; `[:]` -> `:`;
//! `hxxp`/`hxxps`/`[://]` -> `http`/`https`/`://`), cut at `#` (a comment), and split into
//! words. A word is an address or CIDR, possibly with a port (`192.0.2.1:443`,
//! `[2001:db8::1]:443`) or inside a URL (`hxxp://192.0.2.1/x`); or a domain, URL with a host
//! name, or hash (MD5, SHA-1, SHA-256, SHA-512 hex), skipped and counted; or prose, ignored. A
//! word that looks like an address but is not one (`192.0.2.300`, `192.0.2.1/24` with host bits)
//! is an error naming the file and line: it is a typo in the data, not something to skip.
//! Version numbers such as `1.2.3.4` in prose do read as addresses; use one indicator per line
//! for such text.

use std::{net::IpAddr, path::Path};

use ipnetwork::IpNetwork;

use super::{Defaults, EvidenceKey, ImportError, Imported, Indicator, parse_net};
use crate::config::{self, Confidence};

/// Undoes the usual defanging of `line`.
pub fn refang(line: &str) -> String {
    let mut s = line.to_owned();
    for (from, to) in [
        ("[.]", "."),
        ("(.)", "."),
        ("{.}", "."),
        ("[dot]", "."),
        ("(dot)", "."),
        ("[DOT]", "."),
        ("(DOT)", "."),
        ("[:]", ":"),
        ("[://]", "://"),
        ("[/]", "/"),
    ] {
        s = s.replace(from, to);
    }
    for (from, to) in [
        ("hxxps", "https"),
        ("hxxp", "http"),
        ("HXXPS", "HTTPS"),
        ("HXXP", "HTTP"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// What one word is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Word {
    Net(IpNetwork),
    Domain,
    Url,
    Hash,
    /// Prose, numbers, anything else: ignored.
    Other,
}

/// Whether `s` has the shape of an IPv4 or IPv6 address or CIDR, so failing to parse it is an
/// error rather than prose.
fn looks_like_address(s: &str) -> bool {
    let (addr, len) = s.split_once('/').unwrap_or((s, ""));
    if !len.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let v4 = addr.chars().all(|c| c.is_ascii_digit() || c == '.')
        && addr.matches('.').count() == 3
        && addr.split('.').all(|p| !p.is_empty());
    let v6 = addr
        .chars()
        .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        && (addr.contains("::") || addr.matches(':').count() == 7);
    v4 || v6
}

fn is_domain(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()))
}

fn is_hash(s: &str) -> bool {
    matches!(s.len(), 32 | 40 | 64 | 128) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// `host` or `host:port` or `[v6]` or `[v6]:port`, as an address.
fn host_address(host: &str) -> Option<Result<IpAddr, ()>> {
    if let Some(rest) = host.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !(after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
        {
            return Some(Err(()));
        }
        return Some(inner.parse().map_err(|_| ()));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(Ok(ip));
    }
    if looks_like_address(host) {
        return Some(Err(()));
    }
    // IPv4 with a port.
    let (addr, port) = host.rsplit_once(':')?;
    if addr.contains(':') || port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if looks_like_address(addr) {
        return Some(addr.parse().map_err(|_| ()));
    }
    None
}

/// Why an address-shaped word is not an address.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum WordError {
    /// A URL whose host looks like an address but is not one.
    #[error("`{host}` in `{word}` is not an IP address")]
    UrlHost { host: String, word: String },
    /// An address with a port whose address is not one.
    #[error("`{word}` is not an IP address with a port")]
    WithPort { word: String },
    /// An address or CIDR that does not parse (or has host bits set).
    #[error(transparent)]
    Net(#[from] config::ValueError),
}

/// Classifies one refanged word; an error says why an address-shaped word is not an address.
pub fn classify(word: &str) -> Result<Word, WordError> {
    let w = word
        .trim_start_matches(['"', '\'', '`', '<', '(', '{'])
        .trim_end_matches(['"', '\'', '`', '>', ')', '}', ',', ';', '.', '!', '?']);
    if w.is_empty() {
        return Ok(Word::Other);
    }
    if let Some((scheme, rest)) = w.split_once("://") {
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(Word::Other);
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        return match host_address(host) {
            Some(Ok(ip)) => Ok(Word::Net(IpNetwork::from(ip))),
            Some(Err(())) => Err(WordError::UrlHost {
                host: host.to_owned(),
                word: w.to_owned(),
            }),
            None => Ok(Word::Url),
        };
    }
    if w.starts_with('[') || (w.contains(':') && w.contains('.') && w.matches(':').count() == 1) {
        match host_address(w) {
            Some(Ok(ip)) => return Ok(Word::Net(IpNetwork::from(ip))),
            Some(Err(())) => {
                return Err(WordError::WithPort { word: w.to_owned() });
            }
            None => {}
        }
    }
    if looks_like_address(w) {
        return Ok(Word::Net(parse_net(w)?));
    }
    if is_hash(w) {
        return Ok(Word::Hash);
    }
    if is_domain(w) {
        return Ok(Word::Domain);
    }
    Ok(Word::Other)
}

/// Reads IOC text from `path`; every indicator gets `--source` and `--confidence`.
pub fn read(path: &Path, defaults: &Defaults) -> Result<Imported, ImportError> {
    let text = config::read_text(path)?;
    parse(path, &text, defaults)
}

/// Reads IOC text; `path` names it in errors.
pub fn parse(path: &Path, text: &str, defaults: &Defaults) -> Result<Imported, ImportError> {
    let source = defaults.source.clone().ok_or_else(|| {
        ImportError::Usage(
            "an IOC list names no source: pass --source URL (where the list was published)".into(),
        )
    })?;
    let evidence = EvidenceKey {
        source,
        confidence: defaults.confidence.unwrap_or(Confidence::Medium),
        valid_from: None,
        expires: None,
    };
    let mut out = Imported::default();
    for (n, line) in crate::files::read::strip_bom(text).lines().enumerate() {
        let line = refang(line);
        // `#` starts a comment, unless it is part of a URL (`.../page#frag`).
        let content = comment_start(&line).map_or(line.as_str(), |i| &line[..i]);
        if content.trim().is_empty() {
            out.summary.ignore(IGNORED_BLANK);
            continue;
        }
        let counted = (out.summary.imported, out.summary.skipped_total());
        for word in content.split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '|') {
            let what = classify(word).map_err(|m| {
                ImportError::invalid(
                    format!("{}:{}", path.display(), n + 1),
                    format!("{m}; fix or remove it"),
                )
            })?;
            match what {
                Word::Net(net) => {
                    out.summary.imported += 1;
                    out.indicators.push(Indicator {
                        net,
                        evidence: evidence.clone(),
                        label: None,
                    });
                }
                Word::Domain => out.summary.skip("domain names"),
                Word::Url => out.summary.skip("URLs with a host name"),
                Word::Hash => out.summary.skip("file hashes"),
                Word::Other => {}
            }
        }
        if (out.summary.imported, out.summary.skipped_total()) == counted {
            out.summary.ignore(IGNORED_TEXT);
        }
    }
    Ok(out)
}

/// Why a line yielded nothing: blank, or a comment only.
pub const IGNORED_BLANK: &str = "blank or comment-only lines";
/// Why a line yielded nothing: text with no word that reads as an address, a domain name, a
/// URL or a hash.
pub const IGNORED_TEXT: &str =
    "lines of text with no address, domain name, URL or hash (check them if you expected one)";

/// Where a `#` comment starts: at the line start or after whitespace.
fn comment_start(line: &str) -> Option<usize> {
    line.char_indices()
        .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with(|p: char| p.is_whitespace())))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Date, EvidenceKind};

    fn net(s: &str) -> Word {
        Word::Net(s.parse().unwrap())
    }

    #[test]
    fn defanged_forms_read_as_addresses() {
        for (word, want) in [
            ("192.0.2.4", net("192.0.2.4/32")),
            ("192.0.2[.]4", net("192.0.2.4/32")),
            ("192[.]0[.]2[.]4", net("192.0.2.4/32")),
            ("192(.)0(.)2(.)4", net("192.0.2.4/32")),
            ("192[dot]0[dot]2[dot]4", net("192.0.2.4/32")),
            ("hxxp://192.0.2.4/x", net("192.0.2.4/32")),
            ("hxxps[://]192[.]0[.]2[.]4:8443/a?b", net("192.0.2.4/32")),
            ("192.0.2.4:443", net("192.0.2.4/32")),
            ("[2001:db8::1]:443", net("2001:db8::1/128")),
            ("[2001:db8::1]", net("2001:db8::1/128")),
            ("2001:db8::1", net("2001:db8::1/128")),
            ("2001:db8::/32", net("2001:db8::/32")),
            ("198.51.100.0/24", net("198.51.100.0/24")),
            ("198.51.100[.]0/24", net("198.51.100.0/24")),
            ("(192.0.2.4),", net("192.0.2.4/32")),
            ("192.0.2.4.", net("192.0.2.4/32")),
            ("http://user@[2001:db8::2]:80/", net("2001:db8::2/128")),
        ] {
            assert_eq!(classify(&refang(word)), Ok(want), "{word}");
        }
    }

    #[test]
    fn other_indicators_are_told_apart_from_prose() {
        for (word, want) in [
            ("example[.]com", Word::Domain),
            ("hxxp://evil.example/x", Word::Url),
            ("d41d8cd98f00b204e9800998ecf8427e", Word::Hash),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                Word::Hash,
            ),
            ("the", Word::Other),
            ("12:30:45", Word::Other),
            ("2024-09-18", Word::Other),
            ("v1.2", Word::Other),
        ] {
            assert_eq!(classify(&refang(word)), Ok(want), "{word}");
        }
    }

    #[test]
    fn address_shaped_typos_are_errors() {
        for word in [
            "192.0.2.300",
            "192.0.2.1/24",
            "192[.]0[.]2[.]1/33",
            "2001:db8:::1",
            "[2001:db8::zz]:443",
            "hxxp://192.0.2.999/x",
        ] {
            assert!(classify(&refang(word)).is_err(), "{word}");
        }
    }

    #[test]
    fn a_list_with_comments_and_free_text() {
        let text = "# C2 servers (defanged)\n\
                    192.0.2[.]10\n\
                    198.51.100.0/24   # a whole block\n\
                    \n\
                    The actor also used hxxp://203.0.113[.]5:8080/gate and evil[.]example,\n\
                    dropping d41d8cd98f00b204e9800998ecf8427e from [2001:db8::7]:443.\n\
                    # 192.0.2.99 is commented out\n\
                    https://intel.example/report#192.0.2.98\n";
        let d = Defaults {
            kind: EvidenceKind::Advisory,
            source: Some("https://example.org/advisory".into()),
            retrieved: Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()),
            confidence: Some(Confidence::High),
        };
        let got = parse(Path::new("iocs.txt"), text, &d).unwrap();
        let nets: Vec<String> = got.indicators.iter().map(|i| i.net.to_string()).collect();
        assert_eq!(
            nets,
            [
                "192.0.2.10/32",
                "198.51.100.0/24",
                "203.0.113.5/32",
                "2001:db8::7/128"
            ]
        );
        assert_eq!(got.summary.skipped.get("domain names"), Some(&1));
        assert_eq!(got.summary.skipped.get("file hashes"), Some(&1));
        assert_eq!(got.summary.skipped.get("URLs with a host name"), Some(&1));
        assert_eq!(got.indicators[0].evidence.confidence, Confidence::High);

        let err = parse(Path::new("iocs.txt"), "192.0.2.1\n\n10.0.0.256\n", &d)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("iocs.txt:3: "), "{err}");
        let no_source = Defaults { source: None, ..d };
        assert!(
            parse(Path::new("iocs.txt"), "192.0.2.1\n", &no_source)
                .unwrap_err()
                .to_string()
                .contains("--source")
        );
    }
}
