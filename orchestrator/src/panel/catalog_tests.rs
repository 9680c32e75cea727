//! The catalog test: both catalogs have the same keys, every key the panel names exists, and
//! templates hold no words of their own (only in template tags, which take them from the
//! catalog).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::i18n::{Catalog, Lang};

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path, extension));
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn templates() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    files(&dir, "html")
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

fn panel_sources() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/panel");
    files(&dir, "rs")
        .into_iter()
        // These two name keys that must not exist, to test what happens then.
        .filter(|path| !path.ends_with("catalog_tests.rs") && !path.ends_with("i18n.rs"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// Every string literal in `text` that looks like a catalog key of one of `tables`
/// (`"fleet.title"`): a key the code or a template names.
fn named_keys(text: &str, tables: &BTreeSet<&str>) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| {
            literal.split_once('.').is_some_and(|(table, rest)| {
                tables.contains(table)
                    && !rest.is_empty()
                    && rest != "html"
                    && literal.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
                    })
            })
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn both_catalogs_have_the_same_keys() {
    let en: BTreeSet<&str> = Lang::En.catalog().keys().collect();
    let ko: BTreeSet<&str> = Lang::Ko.catalog().keys().collect();
    let only_en: Vec<_> = en.difference(&ko).collect();
    let only_ko: Vec<_> = ko.difference(&en).collect();
    assert!(
        only_en.is_empty() && only_ko.is_empty(),
        "keys only in en.toml: {only_en:?}; only in ko.toml: {only_ko:?}"
    );
}

#[test]
fn every_key_the_panel_names_is_in_the_catalog() {
    let catalog: &Catalog = Lang::En.catalog();
    let tables: BTreeSet<&str> = catalog
        .keys()
        .filter_map(|key| key.split_once('.').map(|(table, _)| table))
        .collect();
    let mut missing = Vec::new();
    for (path, text) in templates().into_iter().chain(panel_sources()) {
        for key in named_keys(&text, &tables) {
            if !catalog.has(&key) {
                missing.push(format!("{}: {key}", path.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from the catalog: {missing:#?}"
    );
}

#[test]
fn the_keys_made_from_states_are_in_the_catalog() {
    let catalog = Lang::En.catalog();
    let mut keys: Vec<String> = super::fleet::STATES
        .iter()
        .map(|s| format!("state.{s}"))
        .collect();
    keys.extend(
        crate::plant::JobState::ALL
            .iter()
            .map(|s| format!("job_state.{s}")),
    );
    keys.extend(
        [
            "interrupted_run",
            "awaiting_load",
            "awaiting_unload",
            "maintenance_due",
            "maintenance",
            "waiting_for_operator",
            "paused",
            "alarm",
        ]
        .iter()
        .map(|kind| format!("hold.{kind}")),
    );
    keys.extend(crate::auth::Role::ALL.iter().map(|r| format!("role.{r}")));
    keys.extend(
        [
            crate::plant::tasks::TaskKind::Load,
            crate::plant::tasks::TaskKind::Setup,
            crate::plant::tasks::TaskKind::Unload,
            crate::plant::tasks::TaskKind::ManualRun,
            crate::plant::tasks::TaskKind::Interrupted,
            crate::plant::tasks::TaskKind::Maintenance,
        ]
        .iter()
        .map(|kind| super::tasks::kind_key(kind.as_str())),
    );
    keys.extend(
        [
            "not_found",
            "conflict",
            "invalid",
            "material_short",
            "invalid_spec",
            "internal",
            "forbidden",
            "unreachable",
        ]
        .iter()
        .map(|code| format!("errors.{code}")),
    );
    let missing: Vec<_> = keys.iter().filter(|k| !catalog.has(k)).collect();
    assert!(missing.is_empty(), "{missing:?}");
}

/// `text` with template tags (`{{ }}`, `{% %}`, `{# #}`) replaced by a space.
fn without_template_tags(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(['{']) {
        let closing = match rest[start..].chars().nth(1) {
            Some('{') => "}}",
            Some('%') => "%}",
            Some('#') => "#}",
            _ => {
                out.push_str(&rest[..=start]);
                rest = &rest[start + 1..];
                continue;
            }
        };
        out.push_str(&rest[..start]);
        out.push(' ');
        let end = rest[start..]
            .find(closing)
            .map_or(rest.len(), |at| start + at + 2);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Attributes whose values people read.
const VISIBLE_ATTRIBUTES: &[&str] = &[
    "title=",
    "placeholder=",
    "aria-label=",
    "alt=",
    "hx-confirm=",
    "hx-prompt=",
];

/// Words in `html` (template tags already removed) outside tags, and in the attributes people
/// read.
fn literal_words(html: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = html;
    loop {
        let (text, tag, advance) = match rest.find('<') {
            Some(at) => {
                let end = rest[at..].find('>').map_or(rest.len(), |e| at + e + 1);
                (&rest[..at], Some(&rest[at..end]), end)
            }
            None => (rest, None, rest.len()),
        };
        let text = strip_entities(text);
        if text.chars().any(char::is_alphabetic) {
            words.push(text.trim().to_string());
        }
        let Some(tag) = tag else { break };
        for attribute in VISIBLE_ATTRIBUTES {
            if let Some(at) = tag.find(attribute) {
                let value = &tag[at + attribute.len()..];
                let value = value
                    .trim_start_matches(['"', '\''])
                    .split(['"', '\''])
                    .next()
                    .unwrap_or("");
                if value.chars().any(char::is_alphabetic) {
                    words.push(format!("{attribute}{value}"));
                }
            }
        }
        rest = &rest[advance..];
    }
    words
}

/// `&times;`, `&#39;` and the like are characters, not words.
fn strip_entities(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        match rest[at..].find(';') {
            Some(end)
                if rest[at + 1..at + end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '#') =>
            {
                rest = &rest[at + end + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn templates_hold_no_words_of_their_own() {
    let mut found = Vec::new();
    for (path, text) in templates() {
        for words in literal_words(&without_template_tags(&text)) {
            found.push(format!("{}: {words:?}", path.display()));
        }
    }
    assert!(
        found.is_empty(),
        "text outside template tags (put it in the catalog): {found:#?}"
    );
}

#[test]
fn the_word_finder_finds_words_where_people_read_them() {
    let html = without_template_tags(
        r#"<p title="{{ t.get("a.b") }}">{{ x }} · &times; 3</p><b>Pause</b><i aria-label="Close"></i>{# note #}"#,
    );
    assert_eq!(literal_words(&html), vec!["Pause", "aria-label=Close"]);
}
