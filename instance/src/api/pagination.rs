//! Mastodon's pagination: `max_id` (older than), `since_id` (newer than, newest first),
//! `min_id` (the page just newer, oldest first internally) and `limit`, answered newest
//! first with a `Link` header whose `next` carries `max_id` and whose `prev` carries
//! `min_id` (clients page up with it).

use axum::http::HeaderValue;
use serde::Deserialize;

use super::ApiError;
use super::params::flex;

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    pub max_id: Option<String>,
    #[serde(default)]
    pub since_id: Option<String>,
    #[serde(default)]
    pub min_id: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub limit: Option<u64>,
}

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub max_id: Option<i64>,
    pub since_id: Option<i64>,
    pub min_id: Option<i64>,
    pub limit: i64,
}

impl PageQuery {
    /// `default` and `max` are the endpoint's (statuses 20/40, accounts 40/80); a larger
    /// limit is clamped, as Mastodon does.
    pub fn page(&self, default: i64, max: i64) -> Result<Page, ApiError> {
        let id = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
            match v.as_deref() {
                None | Some("") => Ok(None),
                Some(s) => s
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| ApiError::validation(name, "is not an ID")),
            }
        };
        let limit = match self.limit {
            None | Some(0) => default,
            Some(n) => i64::try_from(n).unwrap_or(max).min(max),
        };
        Ok(Page {
            max_id: id("max_id", &self.max_id)?,
            since_id: id("since_id", &self.since_id)?,
            min_id: id("min_id", &self.min_id)?,
            limit,
        })
    }
}

impl Page {
    /// With `min_id`, the page is the oldest `limit` rows above it: query in ascending
    /// order, then reverse to newest first.
    pub fn ascending(&self) -> bool {
        self.min_id.is_some()
    }

    /// The exclusive lower bound of the page.
    pub fn lower(&self) -> Option<i64> {
        self.min_id.or(self.since_id)
    }
}

/// The `Link` header for a page of `ids` (newest first) served at `url` (absolute, without
/// a query); `keep` are the request's other parameters, repeated in both links.
pub fn link_header(url: &str, keep: &[(String, String)], ids: &[i64]) -> Option<HeaderValue> {
    let (newest, oldest) = (ids.first()?, ids.last()?);
    let link = |name: &str, id: i64| {
        let mut pairs: Vec<(String, String)> = keep
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "max_id" | "since_id" | "min_id"))
            .cloned()
            .collect();
        pairs.push((name.to_string(), id.to_string()));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("<{url}?{query}>")
    };
    let value = format!(
        "{}; rel=\"next\", {}; rel=\"prev\"",
        link("max_id", *oldest),
        link("min_id", *newest)
    );
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(
        max: Option<&str>,
        since: Option<&str>,
        min: Option<&str>,
        limit: Option<u64>,
    ) -> PageQuery {
        PageQuery {
            max_id: max.map(String::from),
            since_id: since.map(String::from),
            min_id: min.map(String::from),
            limit,
        }
    }

    #[test]
    fn limits_default_and_clamp_and_ids_must_be_numbers() {
        assert_eq!(q(None, None, None, None).page(20, 40).unwrap().limit, 20);
        assert_eq!(
            q(None, None, None, Some(100)).page(20, 40).unwrap().limit,
            40
        );
        assert_eq!(q(None, None, None, Some(0)).page(40, 80).unwrap().limit, 40);
        let p = q(Some("9"), None, Some("3"), Some(5)).page(20, 40).unwrap();
        assert_eq!(
            (p.max_id, p.lower(), p.ascending()),
            (Some(9), Some(3), true)
        );
        let p = q(None, Some("3"), None, None).page(20, 40).unwrap();
        assert_eq!((p.lower(), p.ascending()), (Some(3), false));
        assert!(q(Some("x"), None, None, None).page(20, 40).is_err());
    }

    #[test]
    fn links_point_older_with_max_id_and_newer_with_min_id() {
        let keep = vec![
            ("only_media".to_string(), "true".to_string()),
            ("max_id".to_string(), "100".to_string()),
        ];
        let h = link_header(
            "https://s.example/api/v1/timelines/public",
            &keep,
            &[30, 20, 10],
        )
        .unwrap();
        assert_eq!(
            h.to_str().unwrap(),
            "<https://s.example/api/v1/timelines/public?only_media=true&max_id=10>; rel=\"next\", \
             <https://s.example/api/v1/timelines/public?only_media=true&min_id=30>; rel=\"prev\""
        );
        assert!(link_header("https://s.example/x", &[], &[]).is_none());
    }
}
