//! OpenSanctions FollowTheMoney entities, one JSON object a line (`entities.ftm.json`): each has
//! `id`, `schema` and `properties` (every value a list of strings). A `Sanction` entity links a
//! designation to the sanctioned entity through `entity` and carries `authority`,
//! `authorityId` (the list's own reference), `program`, `country`, `listingDate` and
//! `startDate`; the entity (`Company`, `Organization`, `LegalEntity`, `Person`...) gives `name`
//! and `alias`. Lines of other schemas (addresses, ownership...) are skipped.

use std::{collections::HashMap, path::Path};

use serde::Deserialize;

use super::{Builder, ListDocument, ListError, ListFormat, ListedDesignation, date, non_empty};

#[derive(Deserialize)]
struct Entity {
    id: String,
    schema: String,
    #[serde(default)]
    properties: HashMap<String, Vec<serde_json::Value>>,
}

impl Entity {
    fn values(&self, prop: &str) -> Vec<String> {
        self.properties
            .get(prop)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().and_then(non_empty))
            .collect()
    }

    fn first(&self, prop: &str) -> Option<String> {
        self.values(prop).into_iter().next()
    }
}

/// The enforcing authority for a Sanction's `country` (`gb` → `UK`, `us` → `US`, `eu` → `EU`,
/// others upper-cased).
fn authority_of(country: &str) -> String {
    match country.to_ascii_lowercase().as_str() {
        "gb" => "UK".into(),
        other => other.to_ascii_uppercase(),
    }
}

fn day(s: &str) -> Option<chrono::NaiveDate> {
    date(s.get(..10).unwrap_or(s), &["%Y-%m-%d"])
}

pub fn parse(path: &Path, text: &str) -> Result<ListDocument, ListError> {
    let mut entities: HashMap<String, (usize, Entity)> = HashMap::new();
    let mut sanctions: Vec<(usize, Entity)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let e: Entity = serde_json::from_str(line).map_err(|e| {
            ListError::new(
                path,
                line_no,
                format!(
                    "not a FollowTheMoney entity ({e}); expected one JSON object a line with id, schema and properties"
                ),
            )
        })?;
        if e.schema == "Sanction" {
            sanctions.push((line_no, e));
        } else {
            entities.insert(e.id.clone(), (line_no, e));
        }
    }
    let mut designations = Vec::new();
    for (line, s) in sanctions {
        let Some(target) = s.first("entity") else {
            return Err(ListError::new(
                path,
                line,
                format!("Sanction {} has no `entity`: it cannot be attributed", s.id),
            ));
        };
        let Some((_, entity)) = entities.get(&target) else {
            return Err(ListError::new(
                path,
                line,
                format!(
                    "Sanction {} names entity {target}, which is not in the file; export the sanctioned entities with their sanctions",
                    s.id
                ),
            ));
        };
        let mut names = Builder::default();
        for n in entity.values("name") {
            names.name(&n, true);
        }
        for n in entity
            .values("alias")
            .into_iter()
            .chain(entity.values("previousName"))
        {
            names.name(&n, false);
        }
        let Some((name, aliases)) = names.finish() else {
            return Err(ListError::new(
                path,
                line,
                format!("entity {target} has no name"),
            ));
        };
        let programs = s.values("program");
        designations.push(ListedDesignation {
            reference: s
                .first("authorityId")
                .or_else(|| s.first("unscId"))
                .unwrap_or_else(|| s.id.clone()),
            authority: s.first("country").map(|c| authority_of(&c)),
            name,
            aliases,
            regime: programs.first().cloned(),
            programs,
            listed_on: s
                .first("listingDate")
                .or_else(|| s.first("startDate"))
                .and_then(|d| day(&d)),
            updated_on: s.first("modifiedAt").and_then(|d| day(&d)),
            entity_type: Some(entity.schema.clone()),
            websites: Vec::new(),
            sanctions_imposed: None,
            statement_of_reasons: None,
            line,
        });
    }
    Ok(ListDocument {
        format: ListFormat::Opensanctions,
        authority: None,
        published: None,
        designations,
    })
}
