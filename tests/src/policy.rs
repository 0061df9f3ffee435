//! The one builder of the tests' lab policies: a main file enforcing one authority (`TEST` unless
//! told otherwise) with inline entities, each with its designations and one network group, in
//! the layout the tests used to write by hand:
//!
//! ```text
//! enforce = ["TEST"]
//! [[entities]]
//! id = "lab-drop"
//! name = "lab-drop"
//! action = "drop"
//! designations = [{ authority = "TEST", regime = "lab", reference = "lab-drop", listed_on = 2025-01-01, source = "test" }]
//! networks = [{ prefixes = ["203.0.113.0/24"], evidence = { kind = "manual", source = "test", retrieved = 2026-01-01, confidence = "high" } }]
//! ```
//!
//! ```
//! use embargo::config::Action;
//! use embargo_tests::policy::{LabEntity, LabPolicy};
//!
//! let text = LabPolicy::new()
//!     .entity(LabEntity::new("acme", Action::Drop, &["203.0.113.0/24"]).source("doc"))
//!     .to_string();
//! assert!(text.starts_with("enforce = [\"TEST\"]\n[[entities]]\nid = \"acme\"\n"));
//! ```
//!
//! A test whose configuration is deliberately unusual (broken on purpose, lines counted) keeps
//! its text as it is; this is for the ordinary shape.

use std::{
    fmt::{self, Write as _},
    path::PathBuf,
};

use embargo::config::{Action, DirectionSet};

use crate::lab::{self, Lab};

/// A main file: `enforce`, optional top-level text, then the entities in order (their order is
/// the entity indices).
#[derive(Clone, Debug)]
pub struct LabPolicy {
    authority: String,
    top: String,
    entities: Vec<LabEntity>,
}

impl Default for LabPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl LabPolicy {
    /// Enforcing `TEST`, no entities yet.
    pub fn new() -> Self {
        Self {
            authority: "TEST".to_owned(),
            top: String::new(),
            entities: Vec::new(),
        }
    }

    /// Enforces `authority` instead of `TEST`; entities added after this are designated by it.
    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = authority.to_owned();
        self
    }

    /// Text after `enforce` and before the entities: top-level keys or a table such as
    /// `[events]` (a table ends the top-level keys, so keys come first).
    pub fn top(mut self, text: &str) -> Self {
        self.top.push_str(text);
        if !text.ends_with('\n') {
            self.top.push('\n');
        }
        self
    }

    /// Appends `entity`, designated by this policy's authority.
    pub fn entity(mut self, mut entity: LabEntity) -> Self {
        entity.authority.clone_from(&self.authority);
        self.entities.push(entity);
        self
    }

    /// The two entities the netns-lab tests share: `lab-drop` ("Lab Drop Entity", drop) on
    /// `drop` and `lab-monitor` ("Lab Monitor Entity", monitor) on `monitor`, both with
    /// `direction = "both"`; `each(id, entity)` adds what a test sets apart (designation,
    /// source, guard override).
    pub fn drop_and_monitor(
        drop: &[&str],
        monitor: &[&str],
        each: impl Fn(&str, LabEntity) -> LabEntity,
    ) -> Self {
        let entity = |id: &str, name: &str, action: Action, prefixes: &[&str]| {
            each(
                id,
                LabEntity::new(id, action, prefixes)
                    .name(name)
                    .direction(DirectionSet::Both),
            )
        };
        Self::new()
            .entity(entity("lab-drop", "Lab Drop Entity", Action::Drop, drop))
            .entity(entity(
                "lab-monitor",
                "Lab Monitor Entity",
                Action::Monitor,
                monitor,
            ))
    }

    /// Writes the policy as `name` in the lab's folder; its path.
    pub fn write(&self, lab: &Lab, name: &str) -> lab::Result<PathBuf> {
        lab.write_file(name, &self.to_string())
    }
}

impl fmt::Display for LabPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "enforce = [{}]", quote(&self.authority))?;
        f.write_str(&self.top)?;
        for e in &self.entities {
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// One `[[entities]]` with one network group: prefixes (or countries) under one piece of
/// evidence.
#[derive(Clone, Debug)]
pub struct LabEntity {
    id: String,
    name: String,
    action: Action,
    direction: Option<DirectionSet>,
    authority: String,
    /// `(regime, reference)`; empty means one, `("lab", id)`.
    designations: Vec<(String, String)>,
    /// The designations' source.
    source: String,
    prefixes: Vec<String>,
    countries: Vec<String>,
    guard_override: Option<String>,
    evidence_kind: String,
    evidence_source: String,
    retrieved: String,
    confidence: String,
}

impl LabEntity {
    /// Entity `id` (also its name) with `action` on `prefixes`: one designation (regime `lab`,
    /// reference `id`), manual evidence of high confidence, source `test`, no guard override,
    /// no `direction` key (both).
    pub fn new(id: &str, action: Action, prefixes: &[impl AsRef<str>]) -> Self {
        Self {
            id: id.to_owned(),
            name: id.to_owned(),
            action,
            direction: None,
            authority: "TEST".to_owned(),
            designations: Vec::new(),
            source: "test".to_owned(),
            prefixes: prefixes.iter().map(|p| p.as_ref().to_owned()).collect(),
            countries: Vec::new(),
            guard_override: None,
            evidence_kind: "manual".to_owned(),
            evidence_source: "test".to_owned(),
            retrieved: "2026-01-01".to_owned(),
            confidence: "high".to_owned(),
        }
    }

    /// Entity `id` on whole jurisdictions (`countries = [...]`) instead of prefixes.
    pub fn countries(id: &str, action: Action, codes: &[impl AsRef<str>]) -> Self {
        let mut e = Self::new(id, action, &[] as &[&str]);
        e.countries = codes.iter().map(|c| c.as_ref().to_owned()).collect();
        e
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Writes `direction = ...` (absent, the default is both).
    pub fn direction(mut self, direction: DirectionSet) -> Self {
        self.direction = Some(direction);
        self
    }

    /// Adds a designation; the first replaces the default one.
    pub fn designation(mut self, regime: &str, reference: &str) -> Self {
        self.designations
            .push((regime.to_owned(), reference.to_owned()));
        self
    }

    /// The source named by the designations and by the evidence.
    pub fn source(mut self, source: &str) -> Self {
        self.source = source.to_owned();
        self.evidence_source = source.to_owned();
        self
    }

    /// The network group's `guard_override` (needed for prefixes the guard would refuse).
    pub fn guard(mut self, reason: &str) -> Self {
        self.guard_override = Some(reason.to_owned());
        self
    }

    /// The evidence's kind, source, retrieval date (`YYYY-MM-DD`) and confidence (after
    /// [`LabEntity::source`], which sets the evidence's source too).
    pub fn evidence(mut self, kind: &str, source: &str, retrieved: &str, confidence: &str) -> Self {
        self.evidence_kind = kind.to_owned();
        self.evidence_source = source.to_owned();
        self.retrieved = retrieved.to_owned();
        self.confidence = confidence.to_owned();
        self
    }
}

impl fmt::Display for LabEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            Action::Drop => "drop",
            Action::Monitor => "monitor",
        };
        writeln!(f, "[[entities]]")?;
        writeln!(f, "id = {}", quote(&self.id))?;
        writeln!(f, "name = {}", quote(&self.name))?;
        writeln!(f, "action = \"{action}\"")?;
        if let Some(d) = self.direction {
            let d = match d {
                DirectionSet::Outbound => "outbound",
                DirectionSet::Inbound => "inbound",
                DirectionSet::Both => "both",
            };
            writeln!(f, "direction = \"{d}\"")?;
        }
        let default = [("lab".to_owned(), self.id.clone())];
        let designations = if self.designations.is_empty() {
            &default[..]
        } else {
            &self.designations[..]
        };
        let designations: Vec<String> = designations
            .iter()
            .map(|(regime, reference)| {
                format!(
                    "{{ authority = {}, regime = {}, reference = {}, listed_on = 2025-01-01, source = {} }}",
                    quote(&self.authority),
                    quote(regime),
                    quote(reference),
                    quote(&self.source)
                )
            })
            .collect();
        writeln!(f, "designations = [{}]", designations.join(", "))?;
        let mut network = if self.countries.is_empty() {
            format!("prefixes = [{}]", list(&self.prefixes))
        } else {
            format!("countries = [{}]", list(&self.countries))
        };
        if let Some(g) = &self.guard_override {
            write!(network, ", guard_override = {}", quote(g))?;
        }
        write!(
            network,
            ", evidence = {{ kind = {}, source = {}, retrieved = {}, confidence = {} }}",
            quote(&self.evidence_kind),
            quote(&self.evidence_source),
            self.retrieved,
            quote(&self.confidence)
        )?;
        writeln!(f, "networks = [{{ {network} }}]")
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04X}", u32::from(c));
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| quote(s))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The builder writes what the tests wrote by hand (netns.rs's one-entity policy).
    #[test]
    fn the_shape_the_tests_wrote_by_hand() {
        let text = LabPolicy::new()
            .entity(
                LabEntity::new(
                    "lab-drop",
                    Action::Drop,
                    &["203.0.113.0/24", "2001:db8::/32"],
                )
                .name("Lab Drop")
                .designation("lab", "L-1")
                .source("netns")
                .guard("documentation ranges in a test lab"),
            )
            .to_string();
        assert_eq!(
            text,
            "enforce = [\"TEST\"]\n[[entities]]\nid = \"lab-drop\"\nname = \"Lab Drop\"\naction = \"drop\"\n\
             designations = [{ authority = \"TEST\", regime = \"lab\", reference = \"L-1\", listed_on = 2025-01-01, source = \"netns\" }]\n\
             networks = [{ prefixes = [\"203.0.113.0/24\", \"2001:db8::/32\"], guard_override = \"documentation ranges in a test lab\", evidence = { kind = \"manual\", source = \"netns\", retrieved = 2026-01-01, confidence = \"high\" } }]\n"
        );
    }

    /// Every option, and the text compiles to what it says.
    #[test]
    fn every_option_compiles() {
        let text = LabPolicy::new()
            .authority("SCALE")
            .top("[events]\nrate_per_entity = 1")
            .entity(
                LabEntity::new("a", Action::Monitor, &["198.51.100.0/24".to_owned()])
                    .direction(DirectionSet::Outbound)
                    .designation("r", "R-1")
                    .designation("r", "R-2")
                    .guard("test \"quoted\"")
                    .evidence("advisory", "the feed", "2026-02-03", "medium"),
            )
            .entity(LabEntity::new("b", Action::Drop, &["203.0.113.0/24"]).guard("documentation"))
            .to_string();
        assert!(text.starts_with("enforce = [\"SCALE\"]\n[events]\nrate_per_entity = 1\n"));
        assert!(text.contains("reference = \"R-2\""), "{text}");
        assert!(text.contains("\"test \\\"quoted\\\"\""), "{text}");
        assert!(text.contains("source = \"the feed\""), "{text}");
        let compiled = crate::compile_text(&text);
        assert_eq!(compiled.entities.len(), 2, "{text}");
        assert_eq!(compiled.entities[0].id, "a");
        assert_eq!(compiled.entities[0].action, Action::Monitor);
        assert_eq!(compiled.entities[0].direction, DirectionSet::Outbound);
        assert_eq!(compiled.entities[0].designations.len(), 2);
        assert_eq!(compiled.entities[1].action, Action::Drop);
        assert_eq!(compiled.entities[1].designations[0].reference, "b");
    }
}
