//! Which of a viewer's filters match a status (Mastodon's `CustomFilter.apply_cached_filters`),
//! for `Status.filtered`. Every active filter is reported whatever its contexts, as Mastodon
//! does: clients apply the context of the view they show.

use serde::Serialize;
use sqlx::PgPool;

use super::store::{Filter, load_filters};

/// Mastodon's `FilterResult`.
#[derive(Clone, Debug, Serialize)]
pub struct FilterResult {
    pub filter: Filter,
    pub keyword_matches: Option<Vec<String>>,
    pub status_matches: Option<Vec<String>>,
}

/// The viewer's active filters, read once per batch of statuses.
pub struct Filters(Vec<Filter>);

impl Filters {
    pub async fn of(db: &PgPool, viewer: Option<i64>) -> Result<Self, sqlx::Error> {
        let Some(viewer) = viewer else {
            return Ok(Self(Vec::new()));
        };
        Ok(Self(load_filters(db, viewer, None, true).await?))
    }

    /// The filters matching status `id` with this spoiler and HTML content.
    pub fn results(&self, id: i64, spoiler_text: &str, content_html: &str) -> Vec<FilterResult> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let text = format!("{spoiler_text}\n\n{}", plain_text(content_html)).to_lowercase();
        let id = id.to_string();
        let mut out = Vec::new();
        for f in &self.0 {
            let keywords: Vec<String> = f
                .keywords
                .iter()
                .filter(|k| contains(&text, &k.keyword.to_lowercase(), k.whole_word))
                .map(|k| k.keyword.clone())
                .collect();
            let statuses: Vec<String> = f
                .statuses
                .iter()
                .filter(|s| s.status_id == id)
                .map(|s| s.id.clone())
                .collect();
            if keywords.is_empty() && statuses.is_empty() {
                continue;
            }
            out.push(FilterResult {
                filter: f.clone(),
                keyword_matches: (!keywords.is_empty()).then_some(keywords),
                status_matches: (!statuses.is_empty()).then_some(statuses),
            });
        }
        out
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `needle` (lower-cased) occurs in `hay` (lower-cased); a whole-word keyword must
/// not touch word characters on a side where it starts or ends with one (Mastodon's
/// `\b` placement in `CustomFilterKeyword#to_regex`).
fn contains(hay: &str, needle: &str, whole_word: bool) -> bool {
    if needle.is_empty() {
        return false;
    }
    let starts_word = needle.chars().next().is_some_and(is_word);
    let ends_word = needle.chars().last().is_some_and(is_word);
    hay.match_indices(needle).any(|(i, m)| {
        if !whole_word {
            return true;
        }
        let before = hay[..i].chars().next_back();
        let after = hay[i + m.len()..].chars().next();
        let touches_before = starts_word && before.is_some_and(is_word);
        let touches_after = ends_word && after.is_some_and(is_word);
        !(touches_before || touches_after)
    })
}

/// `statuses` without those a `hide` filter of the viewer matches in `context` (the view
/// being served: `home`, `public`, ...); `warn` matches stay, with their results.
pub fn drop_hidden(
    statuses: Vec<crate::api::entities::status::Status>,
    context: &str,
) -> Vec<crate::api::entities::status::Status> {
    statuses
        .into_iter()
        .filter(|s| {
            !s.filtered.iter().any(|r| {
                r["filter"]["filter_action"] == "hide"
                    && r["filter"]["context"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c == context))
            })
        })
        .collect()
}

/// The text of sanitized status HTML: tags dropped (paragraphs and line breaks become
/// newlines), the entities the sanitizer writes decoded.
fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = &rest[open + 1..open + close];
        if tag.starts_with("br") || tag.starts_with("/p") {
            out.push('\n');
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_respect_word_boundaries_and_case() {
        assert!(contains("i like cats.", "cats", true));
        assert!(!contains("concatsenate", "cats", true));
        assert!(contains("concatsenate", "cats", false));
        assert!(contains("about #cats", "#cats", true));
        assert!(
            contains("a#cats", "#cats", true),
            "no boundary before a non-word start"
        );
        assert!(!contains("anything", "", false));
    }

    #[test]
    fn html_becomes_text() {
        assert_eq!(
            plain_text("<p>a &amp; b<br>c</p><p><a href=\"x\">#Cats</a> &lt;3</p>"),
            "a & b\nc\n#Cats <3\n"
        );
    }
}
