//! The `site.*` rows of `instance_settings`, read once per request with their defaults.
//!
//! A value of the wrong JSON type is logged and ignored: one bad row an admin typed by hand
//! must not take the instance endpoints (which every client calls first) down with it.

use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use tracing::warn;

pub const TITLE: &str = "site.title";
pub const DESCRIPTION: &str = "site.description";
pub const EXTENDED_DESCRIPTION: &str = "site.extended_description";
pub const CONTACT_EMAIL: &str = "site.contact_email";
pub const CONTACT_USERNAME: &str = "site.contact_username";
pub const LANGUAGES: &str = "site.languages";
pub const RULES: &str = "site.rules";

#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub title: String,
    /// Plain text, one paragraph: the `description` of v2 and both descriptions of v1.
    pub description: String,
    /// HTML, with the time it was last changed (ISO 8601), for `extended_description`.
    pub extended_description: Option<(String, String)>,
    pub contact_email: String,
    /// The account shown as the contact; the oldest owner or admin when unset.
    pub contact_username: Option<String>,
    pub languages: Vec<String>,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Rule {
    pub id: String,
    pub text: String,
    pub hint: String,
}

/// A rule as an admin stores it: a bare string, or an object with a hint and a stable id.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredRule {
    Text(String),
    Full {
        #[serde(default)]
        id: Option<Value>,
        text: String,
        #[serde(default)]
        hint: String,
    },
}

impl Site {
    pub fn defaults(domain: &str) -> Self {
        Self {
            title: domain.to_string(),
            description: String::new(),
            extended_description: None,
            contact_email: String::new(),
            contact_username: None,
            languages: vec!["en".to_string()],
            rules: Vec::new(),
        }
    }

    pub async fn load(db: &PgPool, domain: &str) -> Result<Self, sqlx::Error> {
        let rows: Vec<(String, Value, String)> = sqlx::query_as(
            "SELECT key, value, \
                    to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
             FROM instance_settings WHERE key LIKE 'site.%'",
        )
        .fetch_all(db)
        .await?;
        let mut site = Self::defaults(domain);
        for (key, value, updated_at) in rows {
            site.apply(&key, value, updated_at);
        }
        Ok(site)
    }

    fn apply(&mut self, key: &str, value: Value, updated_at: String) {
        let text = |value: Value| match value {
            Value::String(s) => Some(s),
            other => {
                warn!(key, value = %other, "instance setting is not a string; using the default");
                None
            }
        };
        match key {
            TITLE => {
                if let Some(s) = text(value).filter(|s| !s.trim().is_empty()) {
                    self.title = s;
                }
            }
            DESCRIPTION => self.description = text(value).unwrap_or_default(),
            EXTENDED_DESCRIPTION => {
                self.extended_description = text(value).map(|s| (s, updated_at));
            }
            CONTACT_EMAIL => self.contact_email = text(value).unwrap_or_default(),
            CONTACT_USERNAME => {
                self.contact_username = text(value)
                    .map(|s| s.trim().trim_start_matches('@').to_string())
                    .filter(|s| !s.is_empty());
            }
            LANGUAGES => match serde_json::from_value::<Vec<String>>(value) {
                Ok(languages) if !languages.is_empty() => self.languages = languages,
                Ok(_) => {}
                Err(e) => {
                    warn!(key, error = %e, "instance setting is not a list of language codes")
                }
            },
            RULES => self.rules = rules(value),
            _ => {}
        }
    }
}

/// Rules keep their stored order; one without an id is numbered by its position, which stays
/// stable as long as rules are only appended.
fn rules(value: Value) -> Vec<Rule> {
    let Value::Array(items) = value else {
        warn!(
            key = RULES,
            "instance setting is not a JSON array; no rules are shown"
        );
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(
            |(i, item)| match serde_json::from_value::<StoredRule>(item) {
                Ok(StoredRule::Text(text)) => Some(Rule {
                    id: (i + 1).to_string(),
                    text,
                    hint: String::new(),
                }),
                Ok(StoredRule::Full { id, text, hint }) => Some(Rule {
                    id: match id {
                        Some(Value::String(s)) if !s.is_empty() => s,
                        Some(Value::Number(n)) => n.to_string(),
                        _ => (i + 1).to_string(),
                    },
                    text,
                    hint,
                }),
                Err(_) => {
                    warn!(key = RULES, index = i, "skipping a rule without a text");
                    None
                }
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn site(rows: &[(&str, Value)]) -> Site {
        let mut site = Site::defaults("example.org");
        for (key, value) in rows {
            site.apply(key, value.clone(), "2026-11-28T10:00:00.000Z".into());
        }
        site
    }

    #[test]
    fn defaults_hold_until_a_setting_says_otherwise() {
        assert_eq!(site(&[]), Site::defaults("example.org"));
        assert_eq!(site(&[]).title, "example.org");
        let s = site(&[
            (TITLE, json!("Example Social")),
            (DESCRIPTION, json!("A place")),
            (CONTACT_EMAIL, json!("admin@example.org")),
            (CONTACT_USERNAME, json!("@boss")),
            (LANGUAGES, json!(["de", "en"])),
            (EXTENDED_DESCRIPTION, json!("<p>Long</p>")),
            ("site.unknown", json!(1)),
            ("other.key", json!("x")),
        ]);
        assert_eq!(s.title, "Example Social");
        assert_eq!(s.description, "A place");
        assert_eq!(s.contact_email, "admin@example.org");
        assert_eq!(s.contact_username.as_deref(), Some("boss"));
        assert_eq!(s.languages, ["de", "en"]);
        assert_eq!(
            s.extended_description,
            Some(("<p>Long</p>".into(), "2026-11-28T10:00:00.000Z".into()))
        );
    }

    #[test]
    fn values_of_the_wrong_type_fall_back_to_defaults() {
        let s = site(&[
            (TITLE, json!(42)),
            (LANGUAGES, json!("en")),
            (RULES, json!({"text": "not a list"})),
            (CONTACT_USERNAME, json!("  ")),
        ]);
        assert_eq!(s, Site::defaults("example.org"));
        assert_eq!(site(&[(TITLE, json!("  "))]).title, "example.org");
    }

    #[test]
    fn rules_are_strings_or_objects_and_bad_entries_are_skipped() {
        let s = site(&[(
            RULES,
            json!([
                "Be kind",
                {"text": "No spam", "hint": "Ads count"},
                {"id": "r7", "text": "No bots without the bot flag"},
                {"id": 9, "text": "Numbered"},
                {"hint": "no text"},
                12
            ]),
        )]);
        let got: Vec<_> = s
            .rules
            .iter()
            .map(|r| (r.id.as_str(), r.text.as_str(), r.hint.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("1", "Be kind", ""),
                ("2", "No spam", "Ads count"),
                ("r7", "No bots without the bot flag", ""),
                ("9", "Numbered", ""),
            ]
        );
    }
}
