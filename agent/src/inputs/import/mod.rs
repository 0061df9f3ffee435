//! `embargo import`: indicator data (STIX 2.1 bundles, plain IOC text, CSV with named columns)
//! turned into `[[networks]]` groups for an entity file.
//!
//! Each format module reads its file into [`Indicator`]s (an address or CIDR with the evidence
//! it comes with) and a [`Summary`] of what it skipped and why; [`writer`] groups indicators
//! that share the same evidence (source, confidence, dates) into one network group each and
//! renders them as TOML. Nothing is written unless the whole file was read without error.
//!
//! * [`stix`]: `indicator` objects whose STIX pattern compares `ipv4-addr:value` or
//!   `ipv6-addr:value` for equality, alone or `OR`-joined;
//! * [`ioc`]: one indicator per line or free text, defanged forms included;
//! * [`csv`]: CSV with a header row, the columns named on the command line.
//!
//! Indicators in special-purpose ranges ([`crate::policy::special`]: private, loopback,
//! documentation, multicast, ...) are left out by [`leave_out_special`] and counted by kind in
//! the [`Summary`] (standard error), never silently: a compile would refuse them unless their
//! group has a `guard_override`, and `--guard-override REASON` keeps them and writes it.

pub mod csv;
pub mod ioc;
pub mod stix;
pub mod writer;

use std::{collections::BTreeMap, fmt, path::PathBuf};

use ipnetwork::IpNetwork;

use crate::config::{Confidence, ConfigError, Date, EvidenceKind};

/// What the command line says about the evidence, for what the data does not say itself.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// Evidence kind of every group (`--kind`, default `advisory`).
    pub kind: EvidenceKind,
    /// `--source`: the source of indicators whose data names none.
    pub source: Option<String>,
    /// `--retrieved` (default today).
    pub retrieved: Date,
    /// `--confidence`: for indicators whose data gives none.
    pub confidence: Option<Confidence>,
}

/// The evidence an indicator comes with; indicators with equal evidence share a group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EvidenceKey {
    pub source: String,
    pub confidence: Confidence,
    /// The evidence counts from this date (STIX `valid_from`, CSV first-seen).
    pub valid_from: Option<Date>,
    /// It stops counting on this date (STIX `valid_until`, CSV last-seen, `--expires`).
    pub expires: Option<Date>,
    /// The last day the indicator was seen (CSV last-seen): `--max-age` counts from it.
    pub last_seen: Option<Date>,
    /// `max_age` as written in the group (`--max-age`, for indicators with no last-seen date):
    /// `embargo check` counts it from `retrieved`.
    pub max_age: Option<String>,
}

/// One address or CIDR read from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indicator {
    pub net: IpNetwork,
    pub evidence: EvidenceKey,
    /// What the input calls it, for the group's note (a STIX indicator's id and name).
    pub label: Option<String>,
}

/// What a reader skipped, by reason, with counts. Skipping is not an error: the input holds
/// more than addresses (domains, hashes, other pattern types), and the summary says how much.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Indicators (STIX objects, tokens, rows) read as addresses or CIDRs.
    pub imported: usize,
    /// Skipped entries by reason.
    pub skipped: BTreeMap<String, usize>,
    /// Lines that yielded nothing at all (no address, nor anything skipped), by reason: said
    /// too, so a line lost to a stray character does not go unnoticed.
    pub ignored: BTreeMap<String, usize>,
    /// Bad lines skipped (`--on-bad-line skip`), each with its place (`FILE:LINE`) and what is
    /// wrong, in order; also counted in `skipped`.
    pub bad_lines: Vec<(String, String)>,
    /// Addresses and prefixes in special-purpose ranges, by kind ([`crate::policy::special::Kind::label`]):
    /// left out, or kept under `--guard-override` (`special_kept`).
    pub special: BTreeMap<&'static str, usize>,
    /// Whether the special-purpose ones counted in `special` were kept (`--guard-override`).
    pub special_kept: bool,
}

impl Summary {
    /// Counts one skipped entry under `reason`.
    pub fn skip(&mut self, reason: impl Into<String>) {
        *self.skipped.entry(reason.into()).or_default() += 1;
    }

    /// Counts one skipped entry of `kind`, under its reason.
    pub fn skip_kind(&mut self, kind: ioc::SkipKind) {
        self.skip(kind.reason());
    }

    /// Counts one line that yielded nothing, under `reason`.
    pub fn ignore(&mut self, reason: impl Into<String>) {
        *self.ignored.entry(reason.into()).or_default() += 1;
    }

    /// Skipped entries in all.
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} imported, {} skipped",
            self.imported,
            self.skipped_total()
        )?;
        for (reason, n) in &self.skipped {
            write!(f, "\n  skipped {n}: {reason}")?;
        }
        for (reason, n) in &self.ignored {
            write!(f, "\n  ignored {n}: {reason}")?;
        }
        for (kind, n) in &self.special {
            if self.special_kept {
                write!(
                    f,
                    "\n  kept {n} in the {kind} special-purpose range (--guard-override)"
                )?;
            } else {
                write!(
                    f,
                    "\n  left out {n} in the {kind} special-purpose range (a gateway must not block them; \
                     --guard-override REASON keeps them)"
                )?;
            }
        }
        Ok(())
    }
}

/// What a reader produced.
#[derive(Clone, Debug, Default)]
pub struct Imported {
    pub indicators: Vec<Indicator>,
    pub summary: Summary,
}

/// Counts the indicators of `imported` in special-purpose ranges by kind in its summary, and
/// leaves them out unless `keep` (`--guard-override`, which the groups then carry).
pub fn leave_out_special(imported: &mut Imported, keep: bool) {
    let summary = &mut imported.summary;
    summary.special_kept = keep;
    imported.indicators.retain(|i| {
        let Some((_, kind)) = crate::policy::special::overlap(&i.net) else {
            return true;
        };
        *summary.special.entry(kind.label()).or_default() += 1;
        keep
    });
}

/// Why an import was refused. Nothing is written when any of these happens.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input file could not be read (missing, too large, not UTF-8).
    #[error(transparent)]
    Read(#[from] ConfigError),
    /// The input is malformed at a place: `at` is `FILE:LINE[:COLUMN]` or `FILE: <object>`.
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
    /// Something the command line must supply is missing, or an option is wrong.
    #[error("{0}")]
    Usage(String),
    /// The output cannot be written where asked.
    #[error("{path}: {message}")]
    Output { path: PathBuf, message: String },
}

impl ImportError {
    /// An [`ImportError::Invalid`].
    pub fn invalid(at: impl fmt::Display, message: impl Into<String>) -> Self {
        ImportError::Invalid {
            at: at.to_string(),
            message: message.into(),
        }
    }
}

/// How long imported evidence counts (`--expires`, `--max-age`), on top of what the data says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lifetime {
    /// `--expires DATE`: no group counts on or after it.
    pub expires: Option<Date>,
    /// `--max-age DURATION` as written (e.g. `90d`), with its whole days.
    pub max_age: Option<(String, i64)>,
}

impl Lifetime {
    /// Reads `--expires` and `--max-age`; the duration is parsed as the configuration parses
    /// `max_age` ([`crate::config::parse_max_age`]).
    pub fn new(
        expires: Option<chrono::NaiveDate>,
        max_age: Option<&str>,
    ) -> Result<Self, ImportError> {
        let max_age = match max_age {
            None => None,
            Some(text) => {
                let days = crate::config::parse_max_age(text)
                    .map_err(|e| ImportError::Usage(format!("--max-age: {e}")))?;
                Some((text.trim().to_owned(), days))
            }
        };
        Ok(Self {
            expires: expires.map(Date),
            max_age,
        })
    }

    /// Applies the lifetime to every indicator's evidence:
    /// * `--max-age` on an indicator with a last-seen date: it counts through that day plus
    ///   the age (`expires` = last seen + age), replacing the day-after rule;
    /// * `--max-age` on one without: the group gets `max_age`, which `embargo check` counts
    ///   from `retrieved`;
    /// * `--expires`: `expires` becomes the earlier of the data's and this date.
    ///
    /// Refused (nothing is written) when a group would then stop counting on or before the
    /// day it starts counting, which `embargo check` refuses.
    pub fn apply(&self, imported: &mut Imported, retrieved: Date) -> Result<(), ImportError> {
        if self.expires.is_none() && self.max_age.is_none() {
            return Ok(());
        }
        for i in &mut imported.indicators {
            let e = &mut i.evidence;
            if let Some((text, days)) = &self.max_age {
                match e.last_seen {
                    Some(l) => {
                        let by_age = l.0 + chrono::Days::new(*days as u64);
                        e.expires = Some(Date(by_age));
                    }
                    None => e.max_age = Some(text.clone()),
                }
            }
            if let Some(x) = self.expires {
                e.expires = Some(e.expires.map_or(x, |d| d.min(x)));
            }
            let mut until = e.expires.map(|d| d.0);
            if let (Some(_), Some((_, days))) = (&e.max_age, &self.max_age) {
                let by_age = retrieved.0 + chrono::Days::new(*days as u64);
                until = Some(until.map_or(by_age, |u| u.min(by_age)));
            }
            if let (Some(from), Some(until)) = (e.valid_from, until)
                && from.0 >= until
            {
                return Err(ImportError::Usage(format!(
                    "{}: its evidence counts from {from} but would stop counting on {until} \
                     (--expires/--max-age), so it would never count; choose a later --expires \
                     or a longer --max-age",
                    i.net
                )));
            }
        }
        Ok(())
    }
}

/// Parses an address or CIDR (host bits clear) as the configuration does.
pub fn parse_net(text: &str) -> Result<IpNetwork, crate::config::ValueError> {
    crate::config::parse_prefix(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imported(nets: &[&str]) -> Imported {
        Imported {
            indicators: nets
                .iter()
                .map(|n| Indicator {
                    net: n.parse().unwrap(),
                    evidence: EvidenceKey {
                        source: "s".into(),
                        confidence: Confidence::High,
                        valid_from: None,
                        expires: None,
                        last_seen: None,
                        max_age: None,
                    },
                    label: None,
                })
                .collect(),
            summary: Summary::default(),
        }
    }

    /// Special-purpose indicators are left out and counted by kind, never silently; with
    /// `--guard-override` they stay, and the summary says so.
    #[test]
    fn special_purpose_indicators_are_left_out_and_counted_by_kind() {
        let all = [
            "8.8.8.8/32",
            "10.0.0.0/8",
            "127.0.0.1/32",
            "169.254.169.254/32",
            "224.0.0.251/32",
            "255.255.255.255/32",
            "::1/128",
            "192.168.1.0/24",
            "2a00:1450::/32",
        ];
        let mut i = imported(&all);
        leave_out_special(&mut i, false);
        let kept: Vec<String> = i.indicators.iter().map(|i| i.net.to_string()).collect();
        assert_eq!(kept, ["8.8.8.8/32", "2a00:1450::/32"]);
        let counts: Vec<(&str, usize)> = i.summary.special.iter().map(|(k, n)| (*k, *n)).collect();
        assert_eq!(
            counts,
            [
                ("broadcast", 1),
                ("link-local", 1),
                ("loopback", 2),
                ("multicast", 1),
                ("private", 2)
            ]
        );
        let text = i.summary.to_string();
        assert!(
            text.contains("left out 2 in the private special-purpose range"),
            "{text}"
        );
        let mut i = imported(&all);
        leave_out_special(&mut i, true);
        assert_eq!(i.indicators.len(), all.len());
        assert!(
            i.summary
                .to_string()
                .contains("kept 2 in the loopback special-purpose range (--guard-override)")
        );
    }
}
