//! `embargo import <list format> ... --entity ID --out FILE --append`: adds designations from a
//! list to an existing entity file, so one entity is built from several authorities' lists.
//!
//! Invariants (the same as the indicator `--append`, [`crate::inputs::import::writer`]): the
//! file must parse as an entity file before and after, and be the file of `--entity`; a
//! designation the file already has (same authority and reference, compared as the compiler
//! compares them) refuses the whole append with the file and line of the one there; the file is
//! replaced atomically with its mode kept, or left byte for byte as it was; a symbolic link is
//! refused, never written through or replaced.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::PermissionsExt as _,
    path::Path,
};

use serde::Deserialize;
use toml::Spanned;

use crate::{config, files::write, inputs::import::ImportError};

/// One designation to add: its authority, reference and the `[[designations]]` table text.
#[derive(Clone, Debug)]
pub struct NewDesignation {
    pub authority: String,
    pub reference: String,
    pub block: String,
}

/// Just enough of an entity file to find its designations' lines.
#[derive(Deserialize)]
struct Located {
    #[serde(default)]
    designations: Vec<Spanned<Key>>,
}

#[derive(Deserialize)]
struct Key {
    authority: String,
    reference: String,
}

/// The key two designations are the same by.
fn key(authority: &str, reference: &str) -> (String, String) {
    (
        config::authority_key(authority),
        reference.trim().to_ascii_lowercase(),
    )
}

fn parse(path: &Path, text: &str, when: &str) -> Result<config::EntityDef, ImportError> {
    toml::from_str::<config::EntityDef>(text).map_err(|e| {
        let (line, col) = config::line_col(text, e.span().map_or(0, |s| s.start));
        ImportError::Invalid {
            at: format!("{}:{line}:{col}", path.display()),
            message: format!(
                "{}; --append needs an entity file that parses {when}; nothing was written",
                e.message().trim()
            ),
        }
    })
}

/// `old` (the text of entity file `path`) with `new` appended, checked: `old` parses and is
/// `entity`'s, no designation in `new` is already in `old` or twice in `new`, and the result
/// parses with every designation added.
pub fn appended(
    path: &Path,
    old: &str,
    entity: &str,
    new: &[NewDesignation],
) -> Result<String, ImportError> {
    let def = parse(path, old, "before the import")?;
    if def.id.get_ref() != entity {
        return Err(ImportError::Output {
            path: path.to_owned(),
            message: format!(
                "is the entity file of `{}`, not `{entity}`; append to `{entity}`'s file or fix --entity; nothing was written",
                def.id.get_ref()
            ),
        });
    }
    let located: Located = toml::from_str(old).map_err(|e| ImportError::Invalid {
        at: path.display().to_string(),
        message: format!("{}; nothing was written", e.message().trim()),
    })?;
    let mut have: HashMap<(String, String), usize> = HashMap::new();
    for d in &located.designations {
        let (line, _) = config::line_col(old, d.span().start);
        have.entry(key(&d.get_ref().authority, &d.get_ref().reference))
            .or_insert(line);
    }
    let mut adding: HashSet<(String, String)> = HashSet::new();
    for d in new {
        let k = key(&d.authority, &d.reference);
        if let Some(line) = have.get(&k) {
            return Err(ImportError::Invalid {
                at: format!("{}:{line}", path.display()),
                message: format!(
                    "the file already has the {} designation {} here; nothing was written (drop --reference {} or edit that designation)",
                    d.authority, d.reference, d.reference
                ),
            });
        }
        if !adding.insert(k) {
            return Err(ImportError::Usage(format!(
                "the {} designation {} is selected twice; nothing was written",
                d.authority, d.reference
            )));
        }
    }
    let mut text = old.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for d in new {
        text.push('\n');
        text.push_str(&d.block);
    }
    let after = parse(path, &text, "after the import")?;
    if after.designations.len() != def.designations.len() + new.len() {
        return Err(ImportError::Output {
            path: path.to_owned(),
            message: format!(
                "the designations would not be read as added ({} before, {} added, {} after; is \
                 `designations` an inline array in this file?); nothing was written",
                def.designations.len(),
                new.len(),
                after.designations.len()
            ),
        });
    }
    Ok(text)
}

/// Adds `new` to the entity file at `path` (see the module's invariants).
pub fn append(path: &Path, entity: &str, new: &[NewDesignation]) -> Result<(), ImportError> {
    let fail = |message: String| ImportError::Output {
        path: path.to_owned(),
        message,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(fail(
                "is a symbolic link; --append never writes through one: name the file it points to; nothing was written"
                    .to_owned(),
            ));
        }
        Ok(_) => {}
        Err(e) => {
            return Err(fail(format!(
                "cannot read it ({e}); --append adds to an existing entity file (without --append, --out is a folder)"
            )));
        }
    }
    let old = config::read_text(path)?;
    let text = appended(path, &old, entity, new)?;
    let mode = std::fs::symlink_metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .permissions()
        .mode()
        & 0o7777;
    write::write_atomic(path, text.as_bytes(), write::Mode::Exact(mode))
        .map_err(|e| fail(format!("cannot write: {e}; the file is unchanged")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"id = "integrity-tech"
name = "Integrity Technology Group Incorporated"
action = "monitor"

[[designations]]
authority = "UK"
regime = "Cyber"
reference = "CYB9901"
listed_on = 2025-12-09
source = "https://www.gov.uk/"
"#;

    fn us(reference: &str) -> NewDesignation {
        NewDesignation {
            authority: "US".into(),
            reference: reference.into(),
            block: format!(
                "[[designations]]\nauthority = \"US\"\nregime = \"CYBER2\"\nreference = \"{reference}\"\nlisted_on = 2025-01-03\nsource = \"https://sanctionslist.ofac.treas.gov/\"\n"
            ),
        }
    }

    #[test]
    fn a_designation_is_added_and_the_result_parses() {
        let text = appended(Path::new("e.toml"), FILE, "integrity-tech", &[us("99901")]).unwrap();
        assert!(text.starts_with(FILE));
        let def: config::EntityDef = toml::from_str(&text).unwrap();
        assert_eq!(def.designations.len(), 2);
        assert_eq!(def.designations[1].reference, "99901");
    }

    #[test]
    fn a_designation_already_there_is_refused_with_its_line() {
        let mut uk = us("cyb9901 ");
        uk.authority = "uk".into();
        let e = appended(Path::new("e.toml"), FILE, "integrity-tech", &[uk]).unwrap_err();
        assert!(e.to_string().starts_with("e.toml:5: "), "{e}");
        let e = appended(
            Path::new("e.toml"),
            FILE,
            "integrity-tech",
            &[us("1"), us("1")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("selected twice"), "{e}");
        let e = appended(Path::new("e.toml"), FILE, "i-soon", &[us("1")]).unwrap_err();
        assert!(e.to_string().contains("not `i-soon`"), "{e}");
        let e = appended(Path::new("e.toml"), "id = ", "x", &[us("1")]).unwrap_err();
        assert!(e.to_string().starts_with("e.toml:1:"), "{e}");
    }
}
