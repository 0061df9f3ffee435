//! `embargo plan`: what applying a configuration would change against what the running agent
//! has loaded: prefixes added, removed or moved to another entity, entities added, removed or
//! with a new action or direction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::compile::{Compiled, sort_key};

/// A loaded (or compiled) table in the form the agent reports it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableSnapshot {
    pub digest: String,
    /// (id, action, direction)
    pub entities: Vec<(String, String, String)>,
    /// (prefix, entity id)
    pub rules: Vec<(String, String)>,
}

impl TableSnapshot {
    pub fn of(c: &Compiled) -> Self {
        let label = |v: &dyn erased::Label| v.label();
        Self {
            digest: c.digest(),
            entities: c
                .entities
                .iter()
                .map(|e| (e.id.clone(), label(&e.action), label(&e.direction)))
                .collect(),
            rules: c
                .rules
                .iter()
                .map(|r| (r.net.to_string(), c.entities[r.entity as usize].id.clone()))
                .collect(),
        }
    }
}

mod erased {
    /// A serde enum's lowercase label.
    pub trait Label {
        fn label(&self) -> String;
    }
    impl<T: serde::Serialize> Label for T {
        fn label(&self) -> String {
            serde_json::to_value(self)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        }
    }
}

/// The difference between two tables.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Plan {
    pub added: Vec<(String, String)>,
    pub removed: Vec<(String, String)>,
    /// (prefix, from entity, to entity)
    pub moved: Vec<(String, String, String)>,
    pub entities_added: Vec<String>,
    pub entities_removed: Vec<String>,
    /// (id, what changed)
    pub entities_changed: Vec<(String, String)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }
}

/// What turning `loaded` into `next` changes.
pub fn diff(loaded: &TableSnapshot, next: &TableSnapshot) -> Plan {
    let mut plan = Plan::default();
    let old: BTreeMap<&str, &str> = loaded
        .rules
        .iter()
        .map(|(n, e)| (n.as_str(), e.as_str()))
        .collect();
    let new: BTreeMap<&str, &str> = next
        .rules
        .iter()
        .map(|(n, e)| (n.as_str(), e.as_str()))
        .collect();
    for (n, e) in &new {
        match old.get(n) {
            None => plan.added.push((n.to_string(), e.to_string())),
            Some(o) if o != e => plan
                .moved
                .push((n.to_string(), o.to_string(), e.to_string())),
            _ => {}
        }
    }
    for (n, e) in &old {
        if !new.contains_key(n) {
            plan.removed.push((n.to_string(), e.to_string()));
        }
    }
    let key = |s: &str| s.parse().map(|n| sort_key(&n)).unwrap_or_default();
    plan.added.sort_by_key(|(n, _)| key(n));
    plan.removed.sort_by_key(|(n, _)| key(n));
    plan.moved.sort_by_key(|(n, _, _)| key(n));
    let oe: BTreeMap<&str, (&str, &str)> = loaded
        .entities
        .iter()
        .map(|(i, a, d)| (i.as_str(), (a.as_str(), d.as_str())))
        .collect();
    let ne: BTreeMap<&str, (&str, &str)> = next
        .entities
        .iter()
        .map(|(i, a, d)| (i.as_str(), (a.as_str(), d.as_str())))
        .collect();
    for (id, (a, d)) in &ne {
        match oe.get(id) {
            None => plan.entities_added.push(id.to_string()),
            Some((oa, od)) => {
                if oa != a {
                    plan.entities_changed
                        .push((id.to_string(), format!("action {oa} -> {a}")));
                }
                if od != d {
                    plan.entities_changed
                        .push((id.to_string(), format!("direction {od} -> {d}")));
                }
            }
        }
    }
    for id in oe.keys() {
        if !ne.contains_key(id) {
            plan.entities_removed.push(id.to_string());
        }
    }
    plan
}

/// Renders a plan for people; long lists are cut to `limit` lines each.
pub fn render(plan: &Plan, limit: usize) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    if plan.is_empty() {
        o.push_str("no changes\n");
        return o;
    }
    for id in &plan.entities_added {
        let _ = writeln!(o, "+ entity {id}");
    }
    for id in &plan.entities_removed {
        let _ = writeln!(o, "- entity {id}");
    }
    for (id, what) in &plan.entities_changed {
        let _ = writeln!(o, "~ entity {id}: {what}");
    }
    let mut section = |sign: &str, rows: Vec<String>| {
        let total = rows.len();
        for r in rows.into_iter().take(limit) {
            let _ = writeln!(o, "{sign} {r}");
        }
        if total > limit {
            let _ = writeln!(o, "{sign} ... and {} more", total - limit);
        }
    };
    section(
        "+",
        plan.added.iter().map(|(n, e)| format!("{n} {e}")).collect(),
    );
    section(
        "-",
        plan.removed
            .iter()
            .map(|(n, e)| format!("{n} {e}"))
            .collect(),
    );
    section(
        "~",
        plan.moved
            .iter()
            .map(|(n, a, b)| format!("{n} {a} -> {b}"))
            .collect(),
    );
    let _ = writeln!(
        o,
        "\n{} prefixes added, {} removed, {} moved; {} entities added, {} removed, {} changed",
        plan.added.len(),
        plan.removed.len(),
        plan.moved.len(),
        plan.entities_added.len(),
        plan.entities_removed.len(),
        plan.entities_changed.len()
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(entities: &[(&str, &str)], rules: &[(&str, &str)]) -> TableSnapshot {
        TableSnapshot {
            digest: String::new(),
            entities: entities
                .iter()
                .map(|(i, a)| (i.to_string(), a.to_string(), "both".into()))
                .collect(),
            rules: rules
                .iter()
                .map(|(n, e)| (n.to_string(), e.to_string()))
                .collect(),
        }
    }

    #[test]
    fn diff_finds_every_kind_of_change() {
        let old = snap(
            &[("a", "drop"), ("b", "drop")],
            &[
                ("10.0.0.0/8", "a"),
                ("192.0.2.0/24", "b"),
                ("198.51.100.0/24", "a"),
            ],
        );
        let new = snap(
            &[("a", "monitor"), ("c", "drop")],
            &[
                ("10.0.0.0/8", "a"),
                ("192.0.2.0/24", "c"),
                ("2001:db8::/32", "c"),
            ],
        );
        let p = diff(&old, &new);
        assert_eq!(p.added, vec![("2001:db8::/32".into(), "c".into())]);
        assert_eq!(p.removed, vec![("198.51.100.0/24".into(), "a".into())]);
        assert_eq!(
            p.moved,
            vec![("192.0.2.0/24".into(), "b".into(), "c".into())]
        );
        assert_eq!(p.entities_added, vec!["c".to_string()]);
        assert_eq!(p.entities_removed, vec!["b".to_string()]);
        assert_eq!(
            p.entities_changed,
            vec![("a".into(), "action drop -> monitor".into())]
        );
        assert!(diff(&new, &new).is_empty());
        assert!(render(&p, 10).contains("1 prefixes added, 1 removed, 1 moved"));
    }
}
