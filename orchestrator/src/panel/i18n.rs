//! The panel's words: one catalog per language (`i18n/en.toml`, `i18n/ko.toml`, the same keys,
//! grouped in tables by page), embedded in the binary, and the language a request asks for.
//!
//! Templates never hold text of their own: they call `t.get("page.key")`. A key missing from
//! a catalog shows as the key itself (the catalog test keeps that from shipping).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::header::{ACCEPT_LANGUAGE, COOKIE};
use axum::http::request::Parts;

/// A language the panel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ko,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ko];

    /// The BCP 47 tag: the `lang` attribute, the `lang` cookie and the switch's path.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|lang| lang.code() == code)
    }

    pub fn catalog(self) -> &'static Catalog {
        static CATALOGS: OnceLock<[Catalog; 2]> = OnceLock::new();
        let [en, ko] = CATALOGS.get_or_init(|| {
            [
                Catalog::parse("en.toml", include_str!("i18n/en.toml"))
                    .unwrap_or_else(|e| panic!("{e}")),
                Catalog::parse("ko.toml", include_str!("i18n/ko.toml"))
                    .unwrap_or_else(|e| panic!("{e}")),
            ]
        });
        match self {
            Lang::En => en,
            Lang::Ko => ko,
        }
    }

    /// The cookie `lang` if it names a language we speak, else the first of Accept-Language's
    /// languages (by weight) that we speak, else English.
    pub fn of_request(headers: &axum::http::HeaderMap) -> Lang {
        let from_cookie = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix("lang="))
            .find_map(Lang::from_code);
        from_cookie
            .or_else(|| {
                headers
                    .get(ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Lang::from_accept_language)
            })
            .unwrap_or(Lang::En)
    }

    fn from_accept_language(header: &str) -> Option<Lang> {
        let mut ranges: Vec<(f32, Lang)> = header
            .split(',')
            .filter_map(|item| {
                let mut parts = item.trim().split(';');
                let tag = parts.next()?.trim().to_ascii_lowercase();
                let weight = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                let primary = tag.split('-').next()?;
                Some((weight, Lang::from_code(primary)?))
            })
            .filter(|(weight, _)| *weight > 0.0)
            .collect();
        // Stable: among equal weights, the header's order stands.
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranges.first().map(|(_, lang)| *lang)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Lang, Self::Rejection> {
        Ok(Lang::of_request(&parts.headers))
    }
}

/// One language's words, by dotted key (`fleet.title`).
#[derive(Debug)]
pub struct Catalog {
    words: BTreeMap<String, String>,
}

impl Catalog {
    /// A catalog from TOML whose tables group keys by page and whose leaves are strings.
    pub fn parse(name: &str, text: &str) -> Result<Catalog, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        let mut words = BTreeMap::new();
        flatten(name, "", &table, &mut words)?;
        Ok(Catalog { words })
    }

    /// The words for `key`; the key itself when the catalog lacks it.
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.words.get(key).map_or(key, String::as_str)
    }

    /// The words for `key` with each `{name}` replaced by its value.
    pub fn fill<V: AsRef<str>>(&self, key: &str, values: &[(&str, V)]) -> String {
        values
            .iter()
            .fold(self.get(key).to_string(), |text, (name, value)| {
                text.replace(&format!("{{{name}}}"), value.as_ref())
            })
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.words.keys().map(String::as_str)
    }

    pub fn has(&self, key: &str) -> bool {
        self.words.contains_key(key)
    }
}

fn flatten(
    name: &str,
    prefix: &str,
    table: &toml::Table,
    words: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(text) => {
                words.insert(full, text.clone());
            }
            toml::Value::Table(inner) => flatten(name, &full, inner, words)?,
            other => {
                return Err(format!(
                    "{name}: '{full}' must be a string, not {}",
                    other.type_str()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_cookie_then_accept_language_then_english() {
        let cases: &[(Option<&str>, Option<&str>, Lang)] = &[
            (None, None, Lang::En),
            (None, Some("ko-KR,ko;q=0.9,en;q=0.8"), Lang::Ko),
            (None, Some("fr, en;q=0.5, ko;q=0.7"), Lang::Ko),
            (None, Some("de, fr"), Lang::En),
            (None, Some("ko;q=0, en"), Lang::En),
            (Some("theme=dark; lang=ko"), Some("en"), Lang::Ko),
            (Some("lang=xx"), Some("ko"), Lang::Ko),
            (Some("lang=en"), Some("ko"), Lang::En),
        ];
        for (cookie, accept, expected) in cases {
            let mut headers = axum::http::HeaderMap::new();
            if let Some(cookie) = cookie {
                headers.insert(COOKIE, cookie.parse().unwrap());
            }
            if let Some(accept) = accept {
                headers.insert(ACCEPT_LANGUAGE, accept.parse().unwrap());
            }
            assert_eq!(
                Lang::of_request(&headers),
                *expected,
                "{cookie:?} {accept:?}"
            );
        }
    }

    #[test]
    fn a_catalog_is_strings_grouped_in_tables() {
        let catalog = Catalog::parse(
            "t.toml",
            "[fleet]\ntitle = \"Fleet\"\ncount = \"{n} machines\"",
        )
        .unwrap();
        assert_eq!(catalog.get("fleet.title"), "Fleet");
        assert_eq!(catalog.get("fleet.missing"), "fleet.missing");
        assert_eq!(catalog.fill("fleet.count", &[("n", "3")]), "3 machines");
        let wrong = Catalog::parse("t.toml", "[fleet]\ntitle = 3").unwrap_err();
        assert!(wrong.contains("'fleet.title' must be a string"), "{wrong}");
    }
}
