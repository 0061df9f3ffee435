//! What this binary is: its version, the git commit and the date it was built from (set by
//! `build.rs`). `embargo --version` prints [`LONG`], the `embargo_build_info` metric carries the
//! three as labels, `embargo status` shows them.

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit, 12 hex digits, `-dirty` when tracked files had changed; `unknown` when built
/// outside a git checkout.
pub const COMMIT: &str = env!("EMBARGO_GIT_COMMIT");
/// The build date, `YYYY-MM-DD` (UTC; `SOURCE_DATE_EPOCH`'s when it was set).
pub const BUILD_DATE: &str = env!("EMBARGO_BUILD_DATE");

/// `0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-03)`: what `embargo --version` prints after the
/// name.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("EMBARGO_GIT_COMMIT"),
    ", built ",
    env!("EMBARGO_BUILD_DATE"),
    ")"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_facts_are_well_formed() {
        assert!(!VERSION.is_empty());
        let hex = COMMIT.strip_suffix("-dirty").unwrap_or(COMMIT);
        assert!(
            hex == "unknown" || (hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
            "{COMMIT}"
        );
        assert!(
            chrono::NaiveDate::parse_from_str(BUILD_DATE, "%Y-%m-%d").is_ok(),
            "{BUILD_DATE}"
        );
        assert_eq!(
            LONG,
            format!("{VERSION} (commit {COMMIT}, built {BUILD_DATE})")
        );
    }
}
