//! The languages a user reads on the public and hashtag timelines and streams (Mastodon's
//! `users.chosen_languages`, set in its web settings). Mastodon's REST API has no field for
//! it; ours takes `chosen_languages[]` in `update_credentials` as an extension.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::api::ApiError;
use crate::api::params::flex;

/// More than any instance lists; bounds the stored array (the column checks it too).
const MAX: usize = 100;

/// `Some(value)` whenever the field was sent, `null` included (it clears the choice); absent
/// fields stay `None` through `#[serde(default)]`.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `None`: leave as is; `Some(None)`: all languages (nothing chosen, an empty list, or only
/// blank entries, as Mastodon's form sends them); `Some(Some(list))`: only these, in ISO
/// 639 codes, without repeats.
pub fn parse(value: Option<Value>) -> Result<Option<Option<Vec<String>>>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    let list = flex::list(value).map_err(|e| invalid(&e.to_string()))?;
    let mut chosen: Vec<String> = Vec::new();
    for l in list.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if !(2..=3).contains(&l.len()) || !l.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(invalid("must be ISO 639 language codes"));
        }
        if !chosen.iter().any(|c| c == l) {
            chosen.push(l.to_string());
        }
    }
    if chosen.len() > MAX {
        return Err(invalid("has too many entries"));
    }
    Ok(Some((!chosen.is_empty()).then_some(chosen)))
}

fn invalid(why: &str) -> ApiError {
    ApiError::validation("Chosen languages", why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_of_codes_are_kept_and_empty_ones_clear() {
        assert_eq!(parse(None).unwrap(), None);
        assert_eq!(
            parse(Some(json!(["en", "de", "en"]))).unwrap(),
            Some(Some(vec!["en".to_string(), "de".to_string()]))
        );
        assert_eq!(
            parse(Some(json!("fr"))).unwrap(),
            Some(Some(vec!["fr".to_string()]))
        );
        for clear in [json!(null), json!([]), json!([""]), json!("")] {
            assert_eq!(parse(Some(clear.clone())).unwrap(), Some(None), "{clear}");
        }
        assert!(parse(Some(json!(["English"]))).is_err());
        assert!(parse(Some(json!(["EN"]))).is_err());
        assert!(parse(Some(json!({"a": 1}))).is_err());
        let many: Vec<String> = (0..101u8)
            .map(|i| format!("{}{}x", (b'a' + i / 26) as char, (b'a' + i % 26) as char))
            .collect();
        assert!(parse(Some(json!(many))).is_err());
    }
}
