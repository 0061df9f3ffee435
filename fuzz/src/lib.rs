//! What the fuzz targets share: the invariants each parser's output must keep, and a sandbox
//! folder holding the configuration fixtures a fuzzed main file may include.
//!
//! A target calls the parser on the fuzzer's bytes and then one of the `check_*` functions
//! here, which panic (a crash libFuzzer reports) when an invariant does not hold:
//! * every error names a line inside the input ([`check_line`]);
//! * a configuration that parses either compiles or is refused with a typed error, and a
//!   compiled table agrees with [`embargo::policy::compile::evaluate`] ([`check_config`]);
//! * a sanctions list that parses gives designations whose entity file skeletons parse back
//!   ([`check_list`]);
//! * imported prefixes are valid networks, and the groups the writer renders parse back as an
//!   entity file's groups with the same prefixes and evidence ([`check_imported`]).

use std::{
    net::IpAddr,
    path::{Component, Path, PathBuf},
    sync::OnceLock,
};

use chrono::NaiveDate;
use embargo::{
    policy::compile::{self, Decision},
    config::{self, Config, ConfigError, EntityDef},
    policy::explain,
    inputs::import::{
        Defaults, Imported,
        writer::{self, Origin},
    },
    inputs::lists::{self, ListDocument, ListError},
    policy::resolve,
};
use ipnetwork::IpNetwork;

/// The day every compile is evaluated at, so a run is reproducible.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 1).expect("a date")
}

/// Number of lines of `text` as an error may name them: a line past the last newline counts.
pub fn lines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count() + 1
}

/// An error's 1-based line must lie in the input.
pub fn check_line(what: &str, line: usize, text: &str) {
    assert!(
        (1..=lines(text)).contains(&line),
        "{what}: line {line} is outside the input's {} lines",
        lines(text)
    );
}

/// A prefix must be a network: no host bits set.
pub fn check_net(what: &str, net: &IpNetwork) {
    assert_eq!(net.network(), net.ip(), "{what}: {net} has host bits set");
}

// ---------------------------------------------------------------------------------------------
// The configuration.

/// The sandbox: `<root>/config/` laid out like the repository's `config/` (entity files,
/// example tables, source cache, a list), the fuzzed main file placed in `config/examples/`.
/// Written once per process under the fuzz crate's own `target/` (never a shared temporary
/// folder: nothing there can be planted by another user).
pub fn sandbox() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/fuzz-sandbox")
            .join(std::process::id().to_string());
        let files: &[(&str, &str)] = &[
            (
                "config/entities/i-soon.toml",
                include_str!("../../config/entities/i-soon.toml"),
            ),
            (
                "config/entities/integrity-tech.toml",
                include_str!("../../config/entities/integrity-tech.toml"),
            ),
            (
                "config/examples/entities/i-soon.toml",
                include_str!("../../config/entities/i-soon.toml"),
            ),
            (
                "config/examples/dprk-comprehensive.toml",
                include_str!("../../config/examples/dprk-comprehensive.toml"),
            ),
            (
                "config/examples/asn-table.csv",
                include_str!("../../config/examples/asn-table.csv"),
            ),
            (
                "config/examples/country-sample-ipv4.csv",
                include_str!("../../config/examples/country-sample-ipv4.csv"),
            ),
            (
                "config/examples/country-sample-ipv6.csv",
                include_str!("../../config/examples/country-sample-ipv6.csv"),
            ),
            (
                "config/examples/indicators.txt",
                include_str!("../../config/examples/indicators.txt"),
            ),
            (
                "config/examples/lists/UK_Sanctions_List.csv",
                include_str!("../../config/examples/lists/UK_Sanctions_List.csv"),
            ),
            (
                "config/examples/cache/advisory-feed.body",
                include_str!("../../config/examples/cache/advisory-feed.body"),
            ),
            (
                "config/examples/cache/advisory-feed.meta.json",
                include_str!("../../config/examples/cache/advisory-feed.meta.json"),
            ),
            (
                "config/examples/cache/advisory-feed.minisig",
                include_str!("../../config/examples/cache/advisory-feed.minisig"),
            ),
            (
                "config/examples/cache/partner-list.body",
                include_str!("../../config/examples/cache/partner-list.body"),
            ),
            (
                "config/examples/cache/partner-list.meta.json",
                include_str!("../../config/examples/cache/partner-list.meta.json"),
            ),
        ];
        for (rel, text) in files {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().expect("a folder")).expect("sandbox folder");
            std::fs::write(&path, text).expect("sandbox file");
        }
        root
    })
}

/// Where the fuzzed main file says it is: its relative paths resolve in the sandbox.
pub fn main_path() -> PathBuf {
    sandbox().join("config/examples/fuzz.toml")
}

/// Whether relative path `rel`, read from `config/examples/`, stays inside the sandbox.
fn inside(rel: &str) -> bool {
    if rel.contains('\0') {
        return false;
    }
    // The main file's folder is two levels below the sandbox's root.
    let mut depth: i32 = 2;
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Whether resolving `config` reads only files of the sandbox (the fuzzed main file could name
/// any path; reading `/dev/zero` or a FIFO is another matter than parsing).
pub fn hermetic(config: &Config) -> bool {
    let m = &config.main;
    let tables = [&m.asn_table, &m.country_table]
        .into_iter()
        .flatten()
        .flat_map(|t| t.get_ref().list().to_vec());
    let lists = m.lists.iter().flat_map(|l| {
        [&l.path, &l.alt_path]
            .into_iter()
            .flatten()
            .map(|p| p.get_ref().clone())
    });
    let cas = m
        .sources
        .iter()
        .filter_map(|s| s.ca_file.as_ref().map(|c| c.get_ref().clone()));
    let files = config
        .entities
        .iter()
        .filter(|e| e.file == 0)
        .flat_map(|e| e.def.networks.iter())
        .flat_map(|g| g.files.iter().map(|f| f.get_ref().clone()));
    let cache_ok = match &m.cache_dir {
        Some(dir) => inside(dir.get_ref()),
        // The default cache folder is the machine's: not read by a fuzz run.
        None => m.sources.is_empty(),
    };
    cache_ok
        && m.include.iter().all(|i| inside(i.get_ref()))
        && tables
            .chain(lists)
            .chain(cas)
            .chain(files)
            .all(|p| inside(&p))
}

/// A refused configuration names a line of the file it blames, when that is the main file.
pub fn check_config_error(e: &ConfigError, main: &Path, text: &str) {
    let message = e.to_string();
    assert!(!message.trim().is_empty(), "an empty error: {e:?}");
    if let ConfigError::Parse { at, .. } | ConfigError::Invalid { at, .. } = e
        && at.file == main
    {
        check_line(&message, at.line, text);
        assert!(at.column >= 1, "{message}: column 0");
    }
}

/// Resolves and compiles a parsed configuration (when it reads only the sandbox) and checks
/// the compiled table: sorted, valid prefixes, nothing inside an `allow`, and the answer for
/// the addresses at each rule's edges is the one [`compile::evaluate`] gives.
pub fn check_config(config: &Config, main_text: &str) {
    if !hermetic(config) {
        return;
    }
    let main = config.main_file().path.clone();
    let valid = match config::validate::validate(config) {
        Ok(v) => v,
        Err(e) => return check_config_error(&e, &main, main_text),
    };
    let resolved = match resolve::resolve(config) {
        Ok(r) => r,
        Err(e) => return check_config_error(&e, &main, main_text),
    };
    let compiled = match compile::compile(&valid, &resolved, today()) {
        Ok(c) => c,
        Err(e) => return check_config_error(&e, &main, main_text),
    };
    for w in compiled.rules.windows(2) {
        assert!(
            compile::sort_key(&w[0].net) < compile::sort_key(&w[1].net),
            "rules out of order or repeated: {} then {}",
            w[0].net,
            w[1].net
        );
    }
    for r in &compiled.rules {
        check_net("a compiled rule", &r.net);
        assert!(
            (r.entity as usize) < compiled.entities.len(),
            "rule {} names entity {} of {}",
            r.net,
            r.entity,
            compiled.entities.len()
        );
        for (a, _) in &compiled.allow {
            assert!(
                !embargo::policy::cidr::overlaps(&r.net, a),
                "rule {} overlaps allow {a}",
                r.net
            );
        }
    }
    let _ = compiled.digest();
    let table_says = |addr: IpAddr| match compiled.lookup(addr) {
        Some(r) => Decision::Entity(compiled.entities[r.entity as usize].id.clone()),
        None if compiled.allowed(addr).is_some() => Decision::Allowed,
        None => Decision::NotListed,
    };
    for r in compiled.rules.iter().take(16) {
        for addr in [r.net.network(), last_address(&r.net)] {
            let want = compile::evaluate(config, &resolved, today(), addr);
            assert_eq!(
                table_says(addr),
                want,
                "the table and evaluate differ on {addr}"
            );
            let why = match explain::explain(&compiled, addr) {
                explain::Explanation::Listed { entity, .. } => Decision::Entity(entity.id),
                explain::Explanation::Allowed { .. } => Decision::Allowed,
                explain::Explanation::NotListed { .. } => Decision::NotListed,
            };
            assert_eq!(why, want, "`why` and evaluate differ on {addr}");
        }
    }
}

fn last_address(net: &IpNetwork) -> IpAddr {
    match net {
        IpNetwork::V4(n) => IpAddr::V4(n.broadcast()),
        IpNetwork::V6(n) => {
            let host = u128::MAX.checked_shr(u32::from(n.prefix())).unwrap_or(0);
            IpAddr::V6((u128::from(n.network()) | host).into())
        }
    }
}

/// Parses `text` as the main file (in the sandbox) and checks it as [`check_config`] does.
pub fn fuzz_main_file(text: &str) {
    let path = main_path();
    match config::parse(&path, text.to_owned()) {
        Ok(c) => check_config(&c, text),
        Err(e) => check_config_error(&e, &path, text),
    }
}

/// The main file an entity file is compiled under: every authority the fixtures use
/// enforced, both range tables and the example list.
pub const ENTITY_MAIN: &str = r#"enforce = ["UK", "US", "EU", "UN"]
asn_table = "asn-table.csv"
country_table = ["country-sample-ipv4.csv", "country-sample-ipv6.csv"]

[[allow]]
prefix = "192.0.2.128/25"
reason = "fuzz: an allow rule to subtract"

[[lists]]
name = "uk"
format = "uk-csv"
path = "lists/UK_Sanctions_List.csv"
"#;

/// Parses `text` as an entity file in the sandbox's `config/examples/` and compiles it under
/// [`ENTITY_MAIN`].
pub fn fuzz_entity_file(text: &str) {
    let main = main_path();
    let mut config =
        config::parse(&main, ENTITY_MAIN.to_owned()).expect("the fixed main file parses");
    let file = config::SourceFile::new(
        sandbox().join("config/examples/fuzz-entity.toml"),
        text.to_owned(),
    );
    let def = match config::parse_entity(&file) {
        Ok(d) => d,
        Err(e) => return check_config_error(&e, &file.path, text),
    };
    // Its indicator files must stay in the sandbox too.
    if !def
        .networks
        .iter()
        .flat_map(|g| g.files.iter())
        .all(|f| inside(f.get_ref()))
    {
        return;
    }
    config.files.push(file);
    config.entities.push(config::EntitySource {
        file: config.files.len() - 1,
        def,
    });
    let entity_path = config.files[1].path.clone();
    if !hermetic(&config) {
        return;
    }
    let valid = match config::validate::validate(&config) {
        Ok(v) => v,
        Err(e) => return check_config_error(&e, &entity_path, text),
    };
    let resolved = match resolve::resolve(&config) {
        Ok(r) => r,
        Err(e) => return check_config_error(&e, &entity_path, text),
    };
    match compile::compile(&valid, &resolved, today()) {
        Ok(_) => check_config(&config, ENTITY_MAIN),
        Err(e) => check_config_error(&e, &entity_path, text),
    }
}

// ---------------------------------------------------------------------------------------------
// Sanctions lists.

/// The invariants of a parsed list, or of the error refusing it.
pub fn check_list(result: Result<ListDocument, ListError>, path: &Path, text: &str) {
    let doc = match result {
        Ok(d) => d,
        Err(e) => {
            assert_eq!(e.path, path, "the error names another file: {e}");
            check_line(&e.to_string(), e.line, text);
            return;
        }
    };
    assert!(!doc.designations.is_empty(), "an empty list was accepted");
    for d in &doc.designations {
        let what = format!("designation {:?} (line {})", d.reference, d.line);
        check_line(&what, d.line, text);
        assert!(!d.name.trim().is_empty(), "{what}: no name");
        assert!(
            !d.aliases.iter().any(|a| a.eq_ignore_ascii_case(&d.name)),
            "{what}: its name is also an alias"
        );
        for (i, a) in d.aliases.iter().enumerate() {
            assert!(
                !d.aliases[..i].iter().any(|b| b.eq_ignore_ascii_case(a)),
                "{what}: alias {a:?} twice"
            );
        }
        // A designation can be found by its own reference (`list = "..."` designations are).
        let found = doc.find(&d.reference);
        assert!(
            found.is_some_and(|f| f.reference.eq_ignore_ascii_case(d.reference.trim())),
            "{what}: not found by its reference"
        );
        check_skeleton(&doc, d);
    }
}

/// The entity file `embargo import` writes for a designation parses back to the same names
/// and reference.
fn check_skeleton(doc: &ListDocument, d: &lists::ListedDesignation) {
    let id = lists::skeleton::slug(&d.name);
    let text = lists::skeleton::entity_file(doc, d, &id, Some("fuzz-list"), today());
    let def: EntityDef = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("the skeleton does not parse: {e}\n{text}"));
    assert_eq!(def.id.get_ref(), &id);
    assert_eq!(def.name, d.name, "skeleton name");
    assert_eq!(def.aliases, d.aliases, "skeleton aliases");
    assert_eq!(def.designations.len(), 1);
    assert_eq!(
        def.designations[0].reference, d.reference,
        "skeleton reference"
    );
}

/// Parses `data` as a list of `format` (an `ofac-csv` input is `sdn.csv`, then optionally a
/// NUL and `alt.csv`).
pub fn fuzz_list(format: lists::ListFormat, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.list");
    let alt_path = Path::new("fuzz.alt");
    let (main, alt) = match (format, text.split_once('\0')) {
        (lists::ListFormat::OfacCsv, Some((m, a))) => (m, Some((alt_path, a))),
        _ => (text, None),
    };
    let input = lists::ListInput {
        path,
        text: main,
        alt,
    };
    let result = lists::parse(format, &input);
    if let (Err(e), Some((_, alt_text))) = (&result, alt)
        && e.path == alt_path
    {
        check_line(&e.to_string(), e.line, alt_text);
        return;
    }
    check_list(result, path, main);
}

// ---------------------------------------------------------------------------------------------
// Importers.

/// The command-line defaults every import target uses.
pub fn defaults() -> Defaults {
    Defaults {
        kind: config::EvidenceKind::Advisory,
        source: Some("https://example.org/fuzz".into()),
        retrieved: config::Date(today()),
        confidence: Some(config::Confidence::Medium),
    }
}

/// What an importer produced: valid prefixes, sane evidence dates, and groups that round-trip
/// through the writer and the entity-file parser.
pub fn check_imported(imported: &Imported, format: &str) {
    for i in &imported.indicators {
        check_net("an imported prefix", &i.net);
        if let (Some(from), Some(until)) = (i.evidence.valid_from, i.evidence.expires) {
            assert!(from < until, "evidence from {from} expires {until}");
        }
    }
    let groups = writer::group(&imported.indicators);
    let origin = Origin {
        format,
        input: Path::new("fuzz.input"),
        entity: "fuzz",
        guard_override: None,
    };
    let rendered = writer::render(&groups, &defaults(), &origin);
    let text = format!("id = \"fuzz\"\nname = \"Fuzz\"\naction = \"monitor\"\n{rendered}");
    let def: EntityDef = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("the rendered groups do not parse: {e}\n{text}"));
    assert_eq!(def.networks.len(), groups.len(), "groups rendered");
    for (g, n) in groups.iter().zip(&def.networks) {
        let back: Vec<IpNetwork> = n
            .prefixes
            .iter()
            .map(|p| {
                config::parse_prefix(p.get_ref())
                    .unwrap_or_else(|e| panic!("a rendered prefix does not parse: {e}"))
            })
            .collect();
        assert_eq!(back, g.prefixes, "prefixes after rendering");
        assert_eq!(
            n.evidence.source, g.evidence.source,
            "source after rendering"
        );
        assert_eq!(n.evidence.confidence, g.evidence.confidence);
        assert_eq!(n.evidence.valid_from, g.evidence.valid_from.map(config::When::from));
        assert_eq!(n.evidence.expires, g.evidence.expires.map(config::When::from));
    }
}

/// The place an import error names, `FILE:LINE[:COLUMN]`, lies in the input.
pub fn check_import_error(e: &embargo::inputs::import::ImportError, text: &str) {
    if let embargo::inputs::import::ImportError::Invalid { at, .. } = e
        && let Some(rest) = at.strip_prefix("fuzz.input:")
        && let Some(line) = rest.split(':').next().and_then(|l| l.parse::<usize>().ok())
    {
        check_line(&e.to_string(), line, text);
    }
}
