//! `POST /api/v1/apps` (client registration) and `GET /api/v1/apps/verify_credentials`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::OOB;
use super::client::Application;
use crate::api::ApiError;
use crate::api::params::{Params, flex};
use crate::auth::credentials::{digest, new_secret};
use crate::auth::{Auth, Scopes};
use crate::state::AppState;

/// Mastodon's bounds; the table allows a little more.
const MAX_NAME_CHARS: usize = 60;
const MAX_URI_LEN: usize = 2000;
const MAX_REDIRECT_URIS: usize = 16;

#[derive(Debug, Deserialize)]
pub(super) struct CreateApp {
    #[serde(default)]
    client_name: Option<String>,
    /// A string of URIs separated by newlines or spaces, or (since Mastodon 4.3) a list.
    #[serde(default, deserialize_with = "flex::list")]
    redirect_uris: Vec<String>,
    /// A space-separated string; a list is accepted too.
    #[serde(default, deserialize_with = "flex::list")]
    scopes: Vec<String>,
    #[serde(default)]
    website: Option<String>,
}

pub(super) async fn create(
    State(state): State<AppState>,
    Params { value: req, .. }: Params<CreateApp>,
) -> Result<Json<Value>, ApiError> {
    let name = req.client_name.as_deref().map(str::trim).unwrap_or("");
    if name.is_empty() {
        return Err(ApiError::validation("client_name", "can't be blank"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation(
            "client_name",
            &format!("is too long (maximum is {MAX_NAME_CHARS} characters)"),
        ));
    }
    let website = req
        .website
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty());
    if let Some(w) = website {
        check_website(w).map_err(|problem| ApiError::validation("website", problem))?;
    }
    let redirect_uris = split_redirect_uris(&req.redirect_uris);
    if redirect_uris.is_empty() {
        return Err(ApiError::validation("redirect_uris", "can't be blank"));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(ApiError::validation(
            "redirect_uris",
            &format!("has too many entries (maximum is {MAX_REDIRECT_URIS})"),
        ));
    }
    for uri in &redirect_uris {
        check_redirect_uri(uri)
            .map_err(|problem| ApiError::validation("redirect_uris", problem))?;
    }
    let scopes = Scopes::parse(&req.scopes.join(" "))
        .map_err(|problem| ApiError::Validation(format!("scopes contains an {problem}")))?;

    let client_id = new_secret();
    let client_secret = new_secret();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO oauth_applications \
             (name, website, redirect_uris, scopes, client_id, client_secret_hash) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(name)
    .bind(website)
    .bind(&redirect_uris)
    .bind(scopes.to_string())
    .bind(&client_id)
    .bind(digest(&client_secret))
    .fetch_one(state.db.primary())
    .await?;
    let mut body = entity(id, name, website, &redirect_uris, &scopes);
    body["client_id"] = json!(client_id);
    body["client_secret"] = json!(client_secret);
    body["client_secret_expires_at"] = json!(0);
    Ok(Json(body))
}

/// Any valid token, an application's or a user's (Mastodon 4.3 asks for no scope).
pub(super) async fn verify_credentials(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Value>, ApiError> {
    let app = Application::by_id(&state, auth.application_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(Json(entity(
        app.id,
        &app.name,
        app.website.as_deref(),
        &app.redirect_uris,
        &app.scopes(),
    )))
}

/// Mastodon's Application entity. `vapid_key` (deprecated since 4.3 in favour of the
/// instance's `configuration.vapid`) is left out until the configuration carries the key.
fn entity(
    id: i64,
    name: &str,
    website: Option<&str>,
    redirect_uris: &[String],
    scopes: &Scopes,
) -> Value {
    json!({
        "id": id.to_string(),
        "name": name,
        "website": website,
        "scopes": scopes.iter().collect::<Vec<_>>(),
        "redirect_uri": redirect_uris.join("\n"),
        "redirect_uris": redirect_uris,
    })
}

/// Each given value may hold several URIs separated by whitespace; duplicates collapse.
fn split_redirect_uris(given: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for uri in given.iter().flat_map(|v| v.split_whitespace()) {
        if !out.iter().any(|u| u == uri) {
            out.push(uri.to_string());
        }
    }
    out
}

/// An absolute URI without a fragment (RFC 6749 §3.1.2), or the out-of-band marker. Custom
/// schemes are fine (native apps), schemes that run code are not.
pub(super) fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    if uri.len() > MAX_URI_LEN {
        return Err("is too long (maximum is 2000 characters)");
    }
    if uri == OOB {
        return Ok(());
    }
    let parsed = url::Url::parse(uri).map_err(|_| "must be an absolute URI")?;
    if parsed.fragment().is_some() {
        return Err("must not contain a fragment");
    }
    if matches!(parsed.scheme(), "javascript" | "data" | "vbscript" | "file") {
        return Err("must not use that scheme");
    }
    if matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_none_or(str::is_empty) {
        return Err("must be an absolute URI");
    }
    Ok(())
}

fn check_website(website: &str) -> Result<(), &'static str> {
    if website.len() > MAX_URI_LEN {
        return Err("is too long (maximum is 2000 characters)");
    }
    match url::Url::parse(website) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err("is not a valid URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_absolute_without_fragments_or_script_schemes() {
        let ok = [
            OOB,
            "https://app.example/callback",
            "https://app.example/cb?x=1",
            "http://localhost:4000/oauth",
            "elk://oauth",
            "com.example.app:/oauth2redirect",
            "https://[::1]:8080/cb",
        ];
        for uri in ok {
            assert_eq!(check_redirect_uri(uri), Ok(()), "{uri}");
        }
        let bad = [
            ("/relative/path", "absolute"),
            ("app.example/cb", "absolute"),
            ("", "absolute"),
            ("https://app.example/cb#frag", "fragment"),
            ("https://app.example/cb#", "fragment"),
            ("javascript:alert(1)", "scheme"),
            ("JavaScript:alert(1)", "scheme"),
            ("data:text/html,hi", "scheme"),
            ("urn:ietf:wg:oauth:2.0:oob#x", "fragment"),
        ];
        for (uri, problem) in bad {
            let err = check_redirect_uri(uri).unwrap_err();
            assert!(err.contains(problem), "{uri}: {err}");
        }
        let long = format!("https://app.example/{}", "a".repeat(2000));
        assert!(check_redirect_uri(&long).unwrap_err().contains("too long"));
    }

    #[test]
    fn redirect_uris_come_as_one_string_or_a_list() {
        assert_eq!(
            split_redirect_uris(&["https://a.example/1\nhttps://a.example/2 elk://x".into()]),
            ["https://a.example/1", "https://a.example/2", "elk://x"]
        );
        assert_eq!(
            split_redirect_uris(&[OOB.into(), "https://a.example/1".into(), OOB.into()]),
            [OOB, "https://a.example/1"]
        );
        assert!(split_redirect_uris(&["  \n".into()]).is_empty());
    }

    #[test]
    fn websites_are_web_urls() {
        assert!(check_website("https://app.example").is_ok());
        assert!(check_website("javascript:alert(1)").is_err());
        assert!(check_website("app.example").is_err());
    }
}
