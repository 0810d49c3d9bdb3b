//! An authorization request (RFC 6749 §4.1.1 with PKCE) and its validation. A request whose
//! client or redirect URI cannot be trusted is refused on a page; anything else wrong is
//! reported to the client through its redirect URI (§4.1.2.1).

use serde::Deserialize;

use super::OOB;
use super::client::Application;
use super::pkce;
use crate::auth::Scopes;

/// Clients put structured data in `state`; this bounds the URLs and pages it ends up in.
const MAX_STATE_LEN: usize = 4096;

/// The parameters as the client sent them, and as the pages carry them along.
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct AuthParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub force_login: Option<String>,
    pub lang: Option<String>,
}

impl AuthParams {
    /// The request to carry to the next page, without `force_login` (having signed in, the
    /// user must not be sent to the sign-in form again).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("response_type", &self.response_type),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", &self.scope),
            ("state", &self.state),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
            ("lang", &self.lang),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }

    /// `/oauth/authorize?...` for this request.
    pub fn authorize_path(&self, force_login: bool) -> String {
        let mut pairs = self.pairs();
        if force_login {
            pairs.push(("force_login", "true".into()));
        }
        format!(
            "/oauth/authorize?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    }

    pub fn force_login(&self) -> bool {
        matches!(
            self.force_login
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("true" | "1" | "on" | "yes")
        )
    }
}

/// A request that may be shown to the user.
#[derive(Debug)]
pub(super) struct AuthRequest {
    pub app: Application,
    pub redirect_uri: String,
    pub scopes: Scopes,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The client cannot be told: never redirect to a URI it did not register.
    Page(&'static str),
    /// Sent back to the client's redirect URI (or shown, for the out-of-band URI).
    Redirect {
        uri: String,
        error: &'static str,
        description: &'static str,
        state: Option<String>,
    },
}

/// Validates `params` against `app`, the application its `client_id` names (if any).
pub(super) fn check(params: &AuthParams, app: Option<Application>) -> Result<AuthRequest, Refusal> {
    let app = app.ok_or(Refusal::Page(
        "This application is not known to this server (unknown client_id).",
    ))?;
    let redirect_uri = params
        .redirect_uri
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or(Refusal::Page("The request has no redirect_uri."))?;
    if !app.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(Refusal::Page(
            "The redirect URI is not one this application registered.",
        ));
    }
    let state = params.state.clone().filter(|s| !s.is_empty());
    let refuse = |error, description| Refusal::Redirect {
        uri: redirect_uri.to_string(),
        error,
        description,
        state: state.clone(),
    };
    match params.response_type.as_deref() {
        Some("code") => {}
        None | Some("") => {
            return Err(refuse(
                "invalid_request",
                "Missing required parameter: response_type.",
            ));
        }
        Some(_) => {
            return Err(refuse(
                "unsupported_response_type",
                "The authorization server does not support this response type.",
            ));
        }
    }
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err(refuse(
            "invalid_request",
            "The state parameter is too long.",
        ));
    }
    let scopes = Scopes::parse(params.scope.as_deref().unwrap_or(""))
        .ok()
        .filter(|s| s.within(&app.scopes()))
        .ok_or_else(|| {
            refuse(
                "invalid_scope",
                "The requested scope is invalid, unknown, or malformed.",
            )
        })?;
    let challenge = params.code_challenge.as_deref().filter(|c| !c.is_empty());
    let method = params
        .code_challenge_method
        .as_deref()
        .filter(|m| !m.is_empty());
    let code_challenge = match (challenge, method) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method was given without a code_challenge.",
            ));
        }
        (Some(c), Some("S256")) if pkce::valid_challenge(c) => Some(c.to_string()),
        (Some(_), Some("S256")) => {
            return Err(refuse(
                "invalid_request",
                "The code_challenge is not a base64url SHA-256 digest.",
            ));
        }
        (Some(_), _) => {
            return Err(refuse(
                "invalid_request",
                "Only the S256 code_challenge_method is supported.",
            ));
        }
    };
    Ok(AuthRequest {
        redirect_uri: redirect_uri.to_string(),
        app,
        scopes,
        state,
        code_challenge,
    })
}

/// `uri` with `pairs` added to its query. For URIs registered through `check_redirect_uri`.
pub(super) fn with_query(uri: &str, pairs: &[(&str, &str)]) -> Option<String> {
    if uri == OOB {
        return None;
    }
    let mut url = url::Url::parse(uri).ok()?;
    url.query_pairs_mut().extend_pairs(pairs);
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> Application {
        Application {
            id: 1,
            name: "App".into(),
            website: None,
            redirect_uris: vec!["https://app.example/cb".into(), OOB.into()],
            scopes: "read write:statuses".into(),
            client_secret_hash: String::new(),
        }
    }

    fn params(f: impl FnOnce(&mut AuthParams)) -> AuthParams {
        let mut p = AuthParams {
            response_type: Some("code".into()),
            client_id: Some("cid".into()),
            redirect_uri: Some("https://app.example/cb".into()),
            state: Some("st".into()),
            ..Default::default()
        };
        f(&mut p);
        p
    }

    fn refused_with(p: &AuthParams) -> &'static str {
        match check(p, Some(app())).unwrap_err() {
            Refusal::Redirect {
                error, state, uri, ..
            } => {
                assert_eq!(uri, p.redirect_uri.clone().unwrap());
                assert_eq!(state, p.state);
                error
            }
            Refusal::Page(m) => panic!("a page ({m}) instead of a redirect"),
        }
    }

    #[test]
    fn a_good_request_defaults_to_read() {
        let r = check(&params(|_| {}), Some(app())).unwrap();
        assert_eq!(r.scopes.to_string(), "read");
        assert_eq!(r.redirect_uri, "https://app.example/cb");
        assert_eq!(r.state.as_deref(), Some("st"));
        assert_eq!(r.code_challenge, None);
        let r = check(
            &params(|p| p.scope = Some("read:accounts write:statuses".into())),
            Some(app()),
        )
        .unwrap();
        assert_eq!(r.scopes.to_string(), "read:accounts write:statuses");
    }

    #[test]
    fn unknown_clients_and_unregistered_redirects_are_never_redirected_to() {
        assert!(matches!(
            check(&params(|_| {}), None),
            Err(Refusal::Page(_))
        ));
        for uri in [
            None,
            Some(""),
            Some("https://evil.example/cb"),
            Some("https://app.example/cb/"),
            Some("https://app.example/cb?x=1"),
        ] {
            let p = params(|p| p.redirect_uri = uri.map(String::from));
            assert!(
                matches!(check(&p, Some(app())), Err(Refusal::Page(_))),
                "{uri:?}"
            );
        }
    }

    #[test]
    fn other_errors_go_back_to_the_client() {
        assert_eq!(
            refused_with(&params(|p| p.response_type = Some("token".into()))),
            "unsupported_response_type"
        );
        assert_eq!(
            refused_with(&params(|p| p.response_type = None)),
            "invalid_request"
        );
        assert_eq!(
            refused_with(&params(|p| p.scope = Some("write".into()))),
            "invalid_scope",
            "beyond the application's scopes"
        );
        assert_eq!(
            refused_with(&params(|p| p.scope = Some("read sudo".into()))),
            "invalid_scope"
        );
        assert_eq!(
            refused_with(&params(|p| p.state = Some("x".repeat(MAX_STATE_LEN + 1)))),
            "invalid_request"
        );
    }

    #[test]
    fn pkce_is_s256_only() {
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let r = check(
            &params(|p| {
                p.code_challenge = Some(challenge.into());
                p.code_challenge_method = Some("S256".into());
            }),
            Some(app()),
        )
        .unwrap();
        assert_eq!(r.code_challenge.as_deref(), Some(challenge));
        for method in [None, Some("plain"), Some("s256")] {
            let p = params(|p| {
                p.code_challenge = Some(challenge.into());
                p.code_challenge_method = method.map(String::from);
            });
            assert_eq!(refused_with(&p), "invalid_request", "{method:?}");
        }
        let p = params(|p| {
            p.code_challenge = Some("too-short".into());
            p.code_challenge_method = Some("S256".into());
        });
        assert_eq!(refused_with(&p), "invalid_request");
        let p = params(|p| p.code_challenge_method = Some("S256".into()));
        assert_eq!(refused_with(&p), "invalid_request");
    }

    #[test]
    fn parameters_are_added_to_the_redirect_uri_query() {
        assert_eq!(
            with_query(
                "https://app.example/cb?x=1",
                &[("code", "c"), ("state", "a b&c")]
            )
            .unwrap(),
            "https://app.example/cb?x=1&code=c&state=a+b%26c"
        );
        assert_eq!(
            with_query("elk://oauth", &[("code", "c")]).unwrap(),
            "elk://oauth?code=c"
        );
        assert_eq!(with_query(OOB, &[("code", "c")]), None);
    }

    #[test]
    fn the_request_is_carried_without_force_login() {
        let p = params(|p| {
            p.force_login = Some("true".into());
            p.scope = Some("read write".into());
        });
        assert!(p.force_login());
        assert!(!p.pairs().iter().any(|(k, _)| *k == "force_login"));
        assert_eq!(
            p.authorize_path(false),
            "/oauth/authorize?response_type=code&client_id=cid&\
             redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=read+write&state=st"
        );
        assert!(p.authorize_path(true).ends_with("&force_login=true"));
    }
}
