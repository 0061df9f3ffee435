//! `embargo init [--authority UK|US|EU|UN]... DIR`: a starting configuration, a commented main
//! file (`embargo.toml`) and an empty `entities/` folder, that `embargo check` accepts as written.
//!
//! Invariants: nothing is overwritten and nothing is written through a symbolic link: DIR must
//! be missing or an empty folder (not a link); the main file is created exclusively
//! ([`crate::files::write::write_new`]); on a failure after DIR was created by this command,
//! what it created is removed again.

use std::path::Path;

use super::{args::InitAuthority, exit::Exit};

impl InitAuthority {
    /// The name written in `enforce`.
    pub fn name(self) -> &'static str {
        match self {
            InitAuthority::Uk => "UK",
            InitAuthority::Us => "US",
            InitAuthority::Eu => "EU",
            InitAuthority::Un => "UN",
        }
    }

    /// The `[[lists]]` example for the authority: list name, format, file and where it is
    /// published.
    fn list(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            InitAuthority::Uk => (
                "uk",
                "uk-csv",
                "lists/UK_Sanctions_List.csv",
                "https://www.gov.uk/government/publications/the-uk-sanctions-list",
            ),
            InitAuthority::Us => (
                "ofac",
                "ofac-xml",
                "lists/sdn.xml",
                "https://sanctionslist.ofac.treas.gov/",
            ),
            InitAuthority::Eu => (
                "eu",
                "eu-xml",
                "lists/eu_consolidated.xml",
                "https://data.europa.eu/data/datasets/consolidated-list-of-persons-groups-and-entities-subject-to-eu-financial-sanctions",
            ),
            InitAuthority::Un => (
                "un",
                "",
                "",
                "https://main.un.org/securitycouncil/en/content/un-sc-consolidated-list",
            ),
        }
    }
}

/// The main file's text for `authorities` (in the order given, without repeats; UK when none).
pub fn main_file(authorities: &[InitAuthority]) -> String {
    let mut seen: Vec<InitAuthority> = Vec::new();
    for a in authorities {
        if !seen.contains(a) {
            seen.push(*a);
        }
    }
    if seen.is_empty() {
        seen.push(InitAuthority::Uk);
    }
    let names: Vec<&str> = seen.iter().map(|a| a.name()).collect();
    let flags = names
        .iter()
        .map(|n| format!("--authority {n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let enforce = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut lists = String::new();
    for a in &seen {
        let n = a.name();
        let (list, format, path, published) = a.list();
        if format.is_empty() {
            lists.push_str(&format!(
                "# The {n} list ({published}) has no importer yet: write its designations by hand,\n\
                 # with `authority = \"{n}\"`.\n\n"
            ));
        } else {
            lists.push_str(&format!(
                "# The {n} list, read on every compile: a designation written with `list = \"{list}\"`\n\
                 # follows it (its metadata, and a delisting when its reference is gone). Download it\n\
                 # from {published}\n\
                 # [[lists]]\n\
                 # name = \"{list}\"\n\
                 # format = \"{format}\"\n\
                 # path = \"{path}\"\n\n"
            ));
        }
    }
    format!(
        r#"# Embargo main file, written by `embargo init {flags}`.
# Check it with `embargo check --config embargo.toml`; see the project README for every field.

# Authorities whose designations this gateway enforces: an entity counts when it has at least
# one current designation by one of them (UK, US, EU, UN, or another authority by name).
enforce = [{enforce}]

# Entity files (one designated entity each, `*.toml`), relative to this file. Start them from a
# list, then add each [[networks]] group with the evidence that links it to the entity:
#   embargo import uk-csv UK_Sanctions_List.csv --regime Cyber --out entities/
#   embargo import ofac-csv sdn.csv --alt alt.csv --dates sdn_advanced.xml --reference 12345 \
#       --entity some-entity --out entities/some-entity.toml --append
#   embargo import ioc advisory.txt --entity some-entity --source https://... \
#       --out entities/some-entity.toml --append
include = ["entities"]

{lists}# Prefixes never blocked, whatever an entity says (your own networks, partners):
# [[allow]]
# prefix = "203.0.113.0/24"
# reason = "our office uplink"

# Interfaces to attach to (`embargo run --interface NAME:ROLE` adds to these):
# [[interfaces]]
# name = "eth0"
# role = "outside"
"#
    )
}

/// `embargo init`.
pub fn init(authorities: &[InitAuthority], dir: &Path) -> Exit {
    let refuse = |why: String| {
        errln!("error: {}: {why}; nothing was written", dir.display());
        Exit::CantCreate
    };
    let created = match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return refuse("is a symbolic link; name a real folder".into());
        }
        Ok(m) if !m.is_dir() => return refuse("exists and is not a folder".into()),
        Ok(_) => match std::fs::read_dir(dir).map(|mut d| d.next().is_some()) {
            Ok(false) => false,
            Ok(true) => {
                return refuse(
                    "is not empty; `embargo init` starts a new configuration in a new or empty folder"
                        .into(),
                );
            }
            Err(e) => return refuse(format!("cannot read it: {e}")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Err(e) = std::fs::create_dir_all(dir) {
                return refuse(format!("cannot create it: {e}"));
            }
            true
        }
        Err(e) => return refuse(e.to_string()),
    };
    let main = dir.join("embargo.toml");
    let entities = dir.join("entities");
    let written = std::fs::create_dir(&entities)
        .map_err(|e| format!("creating {}: {e}", entities.display()))
        .and_then(|()| {
            crate::files::write::write_new(
                &main,
                main_file(authorities).as_bytes(),
                crate::files::write::Mode::Create(0o644),
            )
            .map_err(|e| format!("writing {}: {e}", main.display()))
        });
    if let Err(e) = written {
        // Leave the folder as it was found.
        let _ = std::fs::remove_dir(&entities);
        if created {
            let _ = std::fs::remove_dir(dir);
        }
        errln!("error: {e}; nothing was written");
        return Exit::CantCreate;
    }
    outln!("wrote {} and {}/", main.display(), entities.display());
    outln!(
        "next: add entity files under {} and run `embargo check --config {}`",
        entities.display(),
        main.display()
    );
    Exit::Success
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every authority's main file parses as a main file and enforces that authority.
    #[test]
    fn every_main_file_parses() {
        for a in [
            InitAuthority::Uk,
            InitAuthority::Us,
            InitAuthority::Eu,
            InitAuthority::Un,
        ] {
            let text = main_file(&[a]);
            let m: crate::config::MainFile =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{a:?}: {e}\n{text}"));
            assert_eq!(m.enforce.len(), 1);
            assert_eq!(m.enforce[0].get_ref(), a.name());
        }
        let text = main_file(&[InitAuthority::Uk, InitAuthority::Us, InitAuthority::Uk]);
        let m: crate::config::MainFile = toml::from_str(&text).unwrap();
        let names: Vec<&str> = m.enforce.iter().map(|a| a.get_ref().as_str()).collect();
        assert_eq!(names, ["UK", "US"]);
        let m: crate::config::MainFile = toml::from_str(&main_file(&[])).unwrap();
        assert_eq!(m.enforce[0].get_ref(), "UK");
    }
}
