//! `cargo xtask tables`: fetches the pinned range tables the scale test and the bench load.
//!
//! Two npm packages by sapics (<https://github.com/sapics/ip-location-db>), each pinned by
//! version and by the SHA-256 of its tarball: `@ip-location-db/asn` (CC BY 4.0) and
//! `@ip-location-db/geo-whois-asn-country` (CC0). Each tarball is downloaded with `curl` from
//! the npm registry, its SHA-256 checked before anything is extracted, and its CSVs,
//! `package.json` and licence files extracted into `target/tables/<package>-<version>/`. A
//! directory that is already there with its `.verified` stamp (the tarball's hash) is kept.
//! The tables are not committed: they are large and have their own licences.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};

use crate::exec;

/// One pinned package.
pub struct Table {
    /// The package name without its scope, e.g. `asn`.
    pub package: &'static str,
    pub version: &'static str,
    /// SHA-256 of the tarball, hex.
    pub sha256: &'static str,
    /// The CSV files the tests and the bench read.
    pub files: &'static [&'static str],
}

/// The pinned tables.
pub const TABLES: [Table; 2] = [
    Table {
        package: "asn",
        version: "2.3.2026061719",
        sha256: "b9425daf2f011c28f8586685d4f89166e77627e2c15fd93c6262c3e2dead6153",
        files: &["asn-ipv4.csv", "asn-ipv6.csv"],
    },
    Table {
        package: "geo-whois-asn-country",
        version: "2.3.2026061719",
        sha256: "2a3e609015884c93c2d398e777ce1d2d34cab026054c43559bff32b25669f606",
        files: &[
            "geo-whois-asn-country-ipv4.csv",
            "geo-whois-asn-country-ipv6.csv",
        ],
    },
];

/// Where the tables go, relative to the workspace root.
pub const DIR: &str = "target/tables";

impl Table {
    fn url(&self) -> String {
        format!(
            "https://registry.npmjs.org/@ip-location-db/{p}/-/{p}-{v}.tgz",
            p = self.package,
            v = self.version
        )
    }

    /// The extracted package's directory.
    pub fn dir(&self) -> PathBuf {
        Path::new(DIR).join(format!("{}-{}", self.package, self.version))
    }

    /// Whether the directory holds a verified extraction of this version.
    fn present(&self) -> bool {
        let dir = self.dir();
        fs::read_to_string(dir.join(".verified")).is_ok_and(|s| s.trim() == self.sha256)
            && dir.join("package.json").is_file()
            && self.files.iter().all(|f| dir.join(f).is_file())
    }
}

/// Fetches and extracts every pinned table that is not already there.
pub fn run() -> Result<()> {
    fs::create_dir_all(DIR).with_context(|| format!("creating {DIR}"))?;
    for t in &TABLES {
        fetch(t)?;
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks that the file at `path` has SHA-256 `expected` (hex); the error names the file and
/// both hashes.
fn verify(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if actual != expected {
        bail!(
            "{}: SHA-256 mismatch: expected {expected}, got {actual}",
            path.display()
        );
    }
    Ok(())
}

fn fetch(t: &Table) -> Result<()> {
    let dir = t.dir();
    if t.present() {
        eprintln!("{}: present and verified", dir.display());
        return Ok(());
    }
    let tgz = Path::new(DIR).join(format!("{}-{}.tgz", t.package, t.version));
    exec(
        Command::new("curl")
            .args(["--fail", "--silent", "--show-error", "--location"])
            .args(["--retry", "3", "--max-time", "600", "--output"])
            .arg(&tgz)
            .arg(t.url()),
    )?;
    if let Err(e) = verify(&tgz, t.sha256) {
        let _ = fs::remove_file(&tgz);
        bail!(
            "{e:#} (downloaded from {}); the download is deleted and nothing was extracted",
            t.url()
        );
    }
    // Extract into a fresh directory beside the final one, then rename it into place.
    let partial = Path::new(DIR).join(format!(".{}-{}.partial", t.package, t.version));
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    exec(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tgz)
            .arg("-C")
            .arg(&partial)
            .args(["--strip-components=1", "--wildcards"])
            .args(["package/*.csv", "package/package.json", "package/*LICENSE*"]),
    )?;
    for f in t.files.iter().chain(&["package.json"]) {
        if !partial.join(f).is_file() {
            bail!("{}: the package has no {f}", tgz.display());
        }
    }
    fs::write(partial.join(".verified"), format!("{}\n", t.sha256))?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&partial, &dir)
        .with_context(|| format!("moving {} to {}", partial.display(), dir.display()))?;
    fs::remove_file(&tgz).with_context(|| format!("removing {}", tgz.display()))?;
    eprintln!("{}: extracted and verified", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_hash_names_the_file_and_both_hashes() {
        let path = std::env::temp_dir().join(format!("xtask-verify-{}", std::process::id()));
        fs::write(&path, b"abc").unwrap();
        // SHA-256 of "abc".
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        verify(&path, abc).unwrap();
        let wrong = "0".repeat(64);
        let err = format!("{:#}", verify(&path, &wrong).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains(&format!("expected {wrong}, got {abc}")),
            "{err}"
        );
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_pins_are_sha256_hex() {
        for t in &TABLES {
            assert_eq!(t.sha256.len(), 64, "{}", t.package);
            assert!(
                t.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}",
                t.package
            );
            assert!(
                t.url()
                    .ends_with(&format!("/{}-{}.tgz", t.package, t.version))
            );
        }
    }
}
