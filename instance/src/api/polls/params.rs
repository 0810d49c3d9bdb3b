//! The `poll` parameter of a new or edited status (`poll[options][]`, `poll[expires_in]`,
//! `poll[multiple]`, `poll[hide_totals]`, or the same as a JSON object), checked against
//! the limits the instance advertises, with Mastodon's `PollValidator` messages.

use serde::Deserialize;
use serde_json::Value;
use unicode_segmentation::UnicodeSegmentation;

use crate::api::ApiError;
use crate::api::instance::limits;
use crate::api::params::flex;

/// A poll as the author asked for it, valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPoll {
    pub options: Vec<String>,
    /// Seconds from now.
    pub expires_in: i64,
    pub multiple: bool,
    pub hide_totals: bool,
}

#[derive(Debug, Default, Deserialize)]
struct Raw {
    #[serde(default, deserialize_with = "flex::list")]
    options: Vec<String>,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    multiple: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    hide_totals: Option<bool>,
}

fn invalid(problem: &str) -> ApiError {
    ApiError::Validation(format!("Poll {problem}"))
}

/// Whether a `poll` parameter was given at all (absent, null and "" mean no poll).
pub fn given(value: &Option<Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// The poll of `value`, or None when none was given.
pub fn parse(value: &Option<Value>) -> Result<Option<NewPoll>, ApiError> {
    if !given(value) {
        return Ok(None);
    }
    let Some(object @ Value::Object(_)) = value else {
        return Err(invalid(
            "must be an object with options and expires_in (poll[options][], poll[expires_in])",
        ));
    };
    let raw: Raw = serde_json::from_value(object.clone()).map_err(|e| invalid(&e.to_string()))?;
    let expires_in = match raw.expires_in {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(
            s.trim()
                .parse::<i64>()
                .map_err(|_| invalid("expires_in is not a number"))?,
        ),
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .ok_or_else(|| invalid("expires_in is not a whole number"))?,
        ),
        Some(_) => return Err(invalid("expires_in is not a number")),
    };
    let poll = NewPoll {
        options: raw.options,
        expires_in: expires_in.ok_or_else(|| invalid("expires at can't be blank"))?,
        multiple: raw.multiple.unwrap_or(false),
        hide_totals: raw.hide_totals.unwrap_or(false),
    };
    validate(&poll)?;
    Ok(Some(poll))
}

/// Mastodon's `PollValidator`, in its order.
fn validate(poll: &NewPoll) -> Result<(), ApiError> {
    let options = &poll.options;
    if options.len() < 2 {
        return Err(invalid("options must have more than one item"));
    }
    if options.len() > limits::POLL_MAX_OPTIONS as usize {
        return Err(invalid(&format!(
            "options can't contain more than {} items",
            limits::POLL_MAX_OPTIONS
        )));
    }
    if options.iter().any(|o| o.trim().is_empty()) {
        return Err(invalid("options can't be blank"));
    }
    if options
        .iter()
        .any(|o| o.graphemes(true).count() > limits::POLL_MAX_CHARACTERS_PER_OPTION as usize)
    {
        return Err(invalid(&format!(
            "options cannot be longer than {} characters each",
            limits::POLL_MAX_CHARACTERS_PER_OPTION
        )));
    }
    let mut seen = options.clone();
    seen.sort();
    seen.dedup();
    if seen.len() != options.len() {
        return Err(invalid("options contain duplicate items"));
    }
    if poll.expires_in > i64::from(limits::POLL_MAX_EXPIRATION) {
        return Err(invalid("expires at is too far into the future"));
    }
    if poll.expires_in < i64::from(limits::POLL_MIN_EXPIRATION) {
        return Err(invalid("expires at is too soon"));
    }
    Ok(())
}

/// Mastodon refuses attachments beside a poll.
pub fn check_media(poll: Option<&NewPoll>, has_media: bool) -> Result<(), ApiError> {
    if poll.is_some() && has_media {
        return Err(ApiError::validation(
            "media_ids",
            "cannot be combined with a poll",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(v: Value) -> String {
        parse(&Some(v)).unwrap_err().to_string()
    }

    #[test]
    fn form_and_json_polls_read_the_same() {
        let form = json!({"options": ["a", "b"], "expires_in": "300", "multiple": "true"});
        let json = json!({"options": ["a", "b"], "expires_in": 300, "multiple": true});
        let want = NewPoll {
            options: vec!["a".into(), "b".into()],
            expires_in: 300,
            multiple: true,
            hide_totals: false,
        };
        assert_eq!(parse(&Some(form)).unwrap(), Some(want.clone()));
        assert_eq!(parse(&Some(json)).unwrap(), Some(want));
        assert_eq!(parse(&None).unwrap(), None);
        assert_eq!(parse(&Some(json!(""))).unwrap(), None);
    }

    #[test]
    fn limits_are_the_advertised_ones() {
        let ok = |options: Vec<String>, expires_in: i64| {
            msg(json!({"options": options, "expires_in": expires_in}))
        };
        let n = |k: usize| (0..k).map(|i| format!("o{i}")).collect::<Vec<_>>();
        assert!(ok(n(1), 300).contains("more than one item"));
        assert!(ok(n(5), 300).contains("more than 4 items"));
        assert!(ok(vec!["x".repeat(51), "y".into()], 300).contains("50 characters"));
        assert!(ok(vec!["a".into(), "a".into()], 300).contains("duplicate"));
        assert!(ok(vec!["a".into(), " ".into()], 300).contains("blank"));
        assert!(ok(n(2), 299).contains("too soon"));
        assert!(ok(n(2), 2_629_747).contains("too far"));
        assert!(msg(json!({"options": ["a", "b"]})).contains("expires at"));
        assert!(msg(json!({"options": ["a", "b"], "expires_in": "soon"})).contains("expires_in"));
        assert!(msg(json!("a poll")).starts_with("Validation failed: Poll"));
        // Emoji count as one character each, as in Mastodon (grapheme clusters).
        let flags = "🇫🇷".repeat(50);
        assert!(
            parse(&Some(json!({"options": [flags, "b"], "expires_in": 300})))
                .unwrap()
                .is_some()
        );
        let four = json!({"options": n(4), "expires_in": 2_629_746});
        assert!(parse(&Some(four)).unwrap().is_some());
    }
}
