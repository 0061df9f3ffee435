//! Plain IOC text: one indicator per line, or addresses in free text (an advisory pasted as
//! text), with the defanged forms advisories use.
//!
//! Each line is refanged (`[.]`, `(.)`, `{.}`, `[dot]`, `(dot)` -> `.`; `[:]` -> `:`;
//! `hxxp`/`hxxps`/`[://]` -> `http`/`https`/`://`), cut at `#` (a comment), and split into
//! words. A word is an address or CIDR, possibly with a port (`192.0.2.1:443`,
//! `[2001:db8::1]:443`) or inside a URL (`hxxp://192.0.2.1/x`); or a domain, URL with a host
//! name, or hash (MD5, SHA-1, SHA-256, SHA-512 hex), skipped and counted; or prose, ignored.
//!
//! Each line is read in one of two modes, chosen per line ([`LineMode`]):
//!
//! * **indicator lines** (every word is an indicator or number-like: no prose word, see
//!   [`is_prose_word`]) are strict: a word that looks like an address but is not one
//!   (`192.0.2.300`, `192.0.2.1/24` with host bits) is an error naming the file and line: it is a
//!   typo in the data, not something to skip;
//! * **prose lines** (at least one prose word: a word with a letter that is no indicator) skip
//!   and count, never refuse: address-shaped words that are not addresses
//!   ([`SkipKind::NotAnAddress`]: `10.0.17763.1`, `1.2.3.4.5`, `192.0.2.300`) and dotted-quad
//!   software versions ([`SkipKind::SoftwareVersion`], the rule in [`is_version_context`]).
//!
//! Every skip is counted by [`SkipKind`] in the [`Summary`](super::Summary), shown on standard
//! error. The scan is one pass over each line's words (linear in the input).

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

/// What an entry was skipped as: one count each in the [`Summary`](super::Summary), under
/// [`SkipKind::reason`]. More kinds can be added (one variant and its reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipKind {
    /// A domain name.
    Domain,
    /// A URL whose host is a name.
    Url,
    /// An MD5, SHA-1, SHA-256 or SHA-512 hash.
    Hash,
    /// Prose only: a word shaped like an address that is not one (`10.0.17763.1`,
    /// `1.2.3.4.5`, `192.0.2.300`, `hxxp://192.0.2.999/x`).
    NotAnAddress,
    /// Prose only: a dotted quad after `version`, `build`, a product name... (see
    /// [`is_version_context`]).
    SoftwareVersion,
}

impl SkipKind {
    /// The reason the summary shows (the existing reasons are unchanged).
    pub fn reason(self) -> &'static str {
        match self {
            SkipKind::Domain => "domain names",
            SkipKind::Url => "URLs with a host name",
            SkipKind::Hash => "file hashes",
            SkipKind::NotAnAddress => {
                "address-shaped words in prose that are not addresses (e.g. build numbers)"
            }
            SkipKind::SoftwareVersion => {
                "dotted software versions in prose (after `version`, `build`, a product name)"
            }
        }
    }
}

/// `word` without the brackets, quotes and punctuation prose puts around it.
pub fn trim_word(word: &str) -> &str {
    word.trim_start_matches(['"', '\'', '`', '<', '(', '{', '['])
        .trim_end_matches(['"', '\'', '`', '>', ')', '}', ',', ';', '.', '!', '?', ':'])
}

/// Digits and dots only, in at least 4 non-empty parts (`10.0.17763.1`, `1.2.3.4.5`): shaped
/// like an IPv4 address, whether or not it is one.
fn dotted_numbers(w: &str) -> bool {
    w.split('.').count() >= 4
        && w.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Words that introduce an address in IOC prose: never a product name.
const ADDRESS_WORDS: &[&str] = &[
    "ip",
    "ips",
    "ipv4",
    "address",
    "addresses",
    "addr",
    "host",
    "hosts",
    "server",
    "servers",
    "node",
    "nodes",
    "vps",
    "proxy",
    "relay",
    "gateway",
    "c2",
    "cnc",
    "ioc",
    "iocs",
];

/// Words that say the next dotted quad is a version.
const VERSION_WORDS: &[&str] = &["version", "ver", "v", "build", "release", "rev", "revision"];

/// Whether a dotted quad (a valid IPv4 address) right after `prev` is a software version, not
/// an address. `prev` is the word before it as written (punctuation included); `sentence_start`
/// says whether `prev` is the first word of the line or follows one ending with `.`, `!`, `?`
/// or `:`. It is a version when `prev`, without leading brackets or quotes:
///
/// 1. is `version`, `ver`, `v`, `build`, `release`, `rev` or `revision` (any case, a final `.`
///    allowed: `ver.`), or
/// 2. is a product name: it ends with no punctuation (not `,`, `;`, `:`, `.`, `)`...), starts
///    with an uppercase ASCII letter and holds only ASCII letters, digits, `-`, `_` and `+`,
///    at least two of them letters; it is not one of the words that introduce addresses
///    (`IP`, `Address`, `Host`, `Server`, `C2`, ... [`ADDRESS_WORDS`]); and if it starts a
///    sentence (where any word is capitalised) it has a capital after its first letter
///    (`FortiOS`, `OpenSSL`, `PAN-OS`), so `Contacted 45.77.1.2` stays an address.
///
/// Everything else is an address: `C2 at 45.77.1.2`, `IP 45.77.1.2`, `45.77.1.2, 45.77.1.3`.
pub fn is_version_context(prev: &str, sentence_start: bool) -> bool {
    let p = prev.trim_start_matches(['"', '\'', '`', '<', '(', '{', '[']);
    let bare = p.strip_suffix('.').unwrap_or(p);
    if VERSION_WORDS.iter().any(|v| v.eq_ignore_ascii_case(bare)) {
        return true;
    }
    let mut chars = p.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_uppercase()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'))
        && p.chars().filter(char::is_ascii_alphabetic).count() >= 2
        && !ADDRESS_WORDS.iter().any(|w| w.eq_ignore_ascii_case(p))
        && (!sentence_start || chars.any(|c| c.is_ascii_uppercase()))
}

/// Whether `word` (refanged) is prose: it holds an ASCII letter and is no indicator (no
/// address, domain, URL or hash, nor shaped like an address). A line with one is read as prose.
pub fn is_prose_word(word: &str, class: &Result<Word, WordError>) -> bool {
    matches!(class, Ok(Word::Other)) && trim_word(word).bytes().any(|b| b.is_ascii_alphabetic())
}

/// How a line is read: see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineMode {
    /// Indicators only: an address-shaped word that is not an address is an error.
    Indicators,
    /// Prose: such words, and versions, are skipped and counted.
    Prose,
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
        last_seen: None,
        max_age: None,
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
        // One pass to classify the words (and so choose the mode), one to count them.
        let words: Vec<(&str, &str, Result<Word, WordError>)> = words(content)
            .map(|(gap, w)| (gap, w, classify(w)))
            .collect();
        let mode = if words.iter().any(|(_, w, c)| is_prose_word(w, c)) {
            LineMode::Prose
        } else {
            LineMode::Indicators
        };
        // The word before the current one as written (`None` after a `,`, `;` or `|`, which
        // end a phrase), and whether it starts a sentence.
        let mut prev: Option<&str> = None;
        let mut prev_starts = true;
        let mut next_starts = true;
        for (gap, word, what) in words {
            let before = prev.filter(|_| !gap.contains([',', ';', '|']));
            let before_starts = prev_starts;
            prev = Some(word);
            prev_starts = next_starts;
            next_starts = word.ends_with(['.', '!', '?', ':']);
            let what = match (what, mode) {
                (Ok(w), _) => w,
                (Err(m), LineMode::Indicators) => {
                    return Err(ImportError::invalid(
                        format!("{}:{}", path.display(), n + 1),
                        format!("{m}; fix or remove it"),
                    ));
                }
                (Err(_), LineMode::Prose) => {
                    out.summary.skip_kind(SkipKind::NotAnAddress);
                    continue;
                }
            };
            match what {
                Word::Net(net) => {
                    if mode == LineMode::Prose
                        && net.is_ipv4()
                        && net.prefix() == 32
                        && dotted_numbers(trim_word(word))
                        && before.is_some_and(|p| is_version_context(p, before_starts))
                    {
                        out.summary.skip_kind(SkipKind::SoftwareVersion);
                        continue;
                    }
                    out.summary.imported += 1;
                    out.indicators.push(Indicator {
                        net,
                        evidence: evidence.clone(),
                        label: None,
                    });
                }
                Word::Domain => out.summary.skip_kind(SkipKind::Domain),
                Word::Url => out.summary.skip_kind(SkipKind::Url),
                Word::Hash => out.summary.skip_kind(SkipKind::Hash),
                Word::Other => {
                    if mode == LineMode::Prose && dotted_numbers(trim_word(word)) {
                        out.summary.skip_kind(SkipKind::NotAnAddress);
                    }
                }
            }
        }
        if (out.summary.imported, out.summary.skipped_total()) == counted {
            out.summary.ignore(IGNORED_TEXT);
        }
    }
    Ok(out)
}

/// Whether `c` separates words: whitespace, `,`, `;` or `|`.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || c == ',' || c == ';' || c == '|'
}

/// The words of `line`, each with the separators before it, in one pass.
fn words(line: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = line;
    std::iter::from_fn(move || {
        let start = rest.find(|c: char| !is_separator(c))?;
        let (gap, tail) = rest.split_at(start);
        let end = tail.find(is_separator).unwrap_or(tail.len());
        let (word, after) = tail.split_at(end);
        rest = after;
        Some((gap, word))
    })
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

    fn advisory_defaults() -> Defaults {
        Defaults {
            kind: EvidenceKind::Advisory,
            source: Some("https://example.org/advisory".into()),
            retrieved: Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()),
            confidence: None,
        }
    }

    fn imported(text: &str) -> (Vec<String>, crate::inputs::import::Summary) {
        let got = parse(Path::new("a.txt"), text, &advisory_defaults()).unwrap();
        let nets = got.indicators.iter().map(|i| i.net.to_string()).collect();
        (nets, got.summary)
    }

    fn skipped(s: &crate::inputs::import::Summary, kind: SkipKind) -> usize {
        s.skipped.get(kind.reason()).copied().unwrap_or(0)
    }

    #[test]
    fn prose_skips_and_counts_address_shaped_words_that_are_not_addresses() {
        let (nets, s) = imported(
            "Patch Windows Server 2019 (build 10.0.17763.1) now; the tool prints 1.2.3.4.5 and \
             192.0.2.300 in its banner.\nThe actor contacted hxxp://192.0.2[.]999/x too.\n",
        );
        assert!(nets.is_empty(), "{nets:?}");
        assert_eq!(skipped(&s, SkipKind::NotAnAddress), 4, "{s}");
    }

    #[test]
    fn prose_skips_versions_after_a_version_word_or_a_product_name() {
        let (nets, s) = imported(
            "Affected: Fortinet FortiOS 7.2.4.1, OpenSSL 3.0.2.1 and libfoo version 2.3.20.2.\n\
             Upgrade to v 1.1.1.1 or (build 4.3.2.1), Release 2.2.2.2 and PAN-OS 10.2.4.1 too.\n\
             Fixed in Apache 2.4.58.1.\n",
        );
        assert!(nets.is_empty(), "{nets:?}");
        assert_eq!(skipped(&s, SkipKind::SoftwareVersion), 8, "{s}");
    }

    #[test]
    fn prose_keeps_real_indicators() {
        let (nets, s) = imported(
            "C2 at 45.77.1.2, 45.77.1.3; IP 45.77.1.4 and Server 45.77.1.5 (port 443).\n\
             Contacted 45.77.1.6 daily. Observed 45.77.1.7 as well.\n\
             IP address: 45.77.1.8\n\
             FortiOS, 45.77.1.9 hosted the payload.\n\
             Cobalt Strike server 45.77.1.10 answered.\n",
        );
        let want: Vec<String> = (2..=10).map(|i| format!("45.77.1.{i}/32")).collect();
        assert_eq!(nets, want, "{s}");
        assert_eq!(s.skipped_total(), 0, "{s}");
    }

    #[test]
    fn indicator_lines_stay_strict() {
        let d = advisory_defaults();
        for text in [
            "10.0.17763.1\n",
            "192.0.2.1, 192.0.2.300\n",
            "192.0.2.1 | 192.0.2.1/24\n",
            "hxxp://192.0.2[.]999/x\n",
        ] {
            let err = parse(Path::new("a.txt"), text, &d).unwrap_err().to_string();
            assert!(err.starts_with("a.txt:1: "), "{text}: {err}");
        }
        // A line with a version word is prose, and its dotted quad a version; a bare quad on
        // its own line is an address.
        let (nets, s) = imported("v 3.0.2.1\n3.0.2.1\n");
        assert_eq!(nets, ["3.0.2.1/32"]);
        assert_eq!(skipped(&s, SkipKind::SoftwareVersion), 1);
    }

    #[test]
    fn the_version_rule() {
        for (prev, start, version) in [
            ("version", false, true),
            ("Version", true, true),
            ("ver.", false, true),
            ("(build", false, true),
            ("FortiOS", true, true),
            ("OpenSSL", false, true),
            ("Apache", false, true),
            ("Apache", true, false),
            ("Contacted", true, false),
            ("IP", false, false),
            ("C2", false, false),
            ("at", false, false),
            ("FortiOS,", false, false),
            ("Address:", false, false),
            ("45.77.1.1", false, false),
        ] {
            assert_eq!(is_version_context(prev, start), version, "{prev} {start}");
        }
    }
}
