//! `/oauth/authorize` (with and without the trailing slash toot uses): the sign-in form
//! when the browser has no session, then the consent form, then a redirect to the client
//! with a code (or the code on a page for the out-of-band URI).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::info;

use super::OOB;
use super::client::Application;
use super::pages::{self, ConsentPage, SignInPage};
use super::request::{AuthParams, AuthRequest, Refusal, check, with_query};
use super::session::{
    CSRF_COOKIE, Keys, SESSION_COOKIE, SESSION_TTL_SECS, browser_id, cookie, set_cookie,
};
use super::users::{SignIn, User, sign_in as check_password};
use crate::api::ApiError;
use crate::auth::credentials::{digest, new_secret};
use crate::state::AppState;

/// RFC 6749 §4.1.2 recommends ten minutes at most.
const CODE_TTL: &str = "10 minutes";

const FORM_EXPIRED: &str =
    "This form has expired or was not sent from this site. Go back, reload the page and try again.";

/// A failure while serving a page: an HTML page, not a JSON body (the cause is logged by
/// `ApiError`'s own rendering).
pub(super) struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.into_response().status();
        pages::respond(
            status,
            pages::message(
                "en",
                "Something went wrong",
                "Please try again in a moment.",
            ),
            &[],
        )
    }
}

type PageResult = Result<Response, PageError>;

pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> PageResult {
    let Some(params) = parse::<AuthParams>(query.as_deref().unwrap_or("").as_bytes()) else {
        return Ok(malformed());
    };
    let lang = pages::lang(params.lang.as_deref());
    let request = match resolve(&state, &params).await? {
        Ok(r) => r,
        Err(refusal) => return Ok(refuse(refusal, lang, StatusCode::FOUND)),
    };
    let keys = Keys::new(&state.config);
    let browser = browser_id(&headers);
    let user = if params.force_login() {
        None
    } else {
        signed_in(&state, &keys, &headers).await?
    };
    Ok(match user {
        None => sign_in_page(&state, &keys, &params, &request, &browser, "", None),
        Some((user, nonce)) => {
            consent_page(&state, &keys, &params, &request, &browser, &user, &nonce)
        }
    })
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(flatten)]
    request: AuthParams,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /oauth/sign_in`: the sign-in form.
pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let Some(form) = parse::<SignInForm>(&body) else {
        return Ok(malformed());
    };
    let lang = pages::lang(form.request.lang.as_deref());
    let keys = Keys::new(&state.config);
    let Some(browser) = cookie(&headers, CSRF_COOKIE)
        .filter(|b| keys.csrf_valid(b, None, &form.csrf_token))
        .map(str::to_string)
    else {
        return Ok(page(StatusCode::FORBIDDEN, lang, "Try again", FORM_EXPIRED));
    };
    let request = match resolve(&state, &form.request).await? {
        Ok(r) => r,
        Err(refusal) => return Ok(refuse(refusal, lang, StatusCode::SEE_OTHER)),
    };
    let email = form.email.trim();
    let (status, error) = match check_password(&state, email, &form.password).await? {
        SignIn::Ok(user) => {
            info!(
                user_id = user.id,
                app_id = request.app.id,
                "signed in to authorize"
            );
            let session = keys.seal_session(user.id, &user.password_hash, unix_now());
            let mut response = see_other(&form.request.authorize_path(false));
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &session, SESSION_TTL_SECS),
            );
            return Ok(response);
        }
        SignIn::BadCredentials => (
            StatusCode::UNAUTHORIZED,
            "Invalid email address or password.",
        ),
        SignIn::Refused(reason) => (StatusCode::FORBIDDEN, reason),
    };
    let mut response = sign_in_page(
        &state,
        &keys,
        &form.request,
        &request,
        &browser,
        email,
        Some(error),
    );
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct DecisionForm {
    #[serde(flatten)]
    request: AuthParams,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /oauth/authorize`: the consent form's answer.
pub(super) async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let Some(form) = parse::<DecisionForm>(&body) else {
        return Ok(malformed());
    };
    let lang = pages::lang(form.request.lang.as_deref());
    let keys = Keys::new(&state.config);
    let Some((user, nonce)) = signed_in(&state, &keys, &headers).await? else {
        // The session ran out between the pages: sign in again.
        return Ok(see_other(&form.request.authorize_path(false)));
    };
    let csrf_ok = cookie(&headers, CSRF_COOKIE)
        .is_some_and(|b| keys.csrf_valid(b, Some(&nonce), &form.csrf_token));
    if !csrf_ok {
        return Ok(page(StatusCode::FORBIDDEN, lang, "Try again", FORM_EXPIRED));
    }
    let request = match resolve(&state, &form.request).await? {
        Ok(r) => r,
        Err(refusal) => return Ok(refuse(refusal, lang, StatusCode::SEE_OTHER)),
    };
    match form.decision.as_str() {
        "approve" => {}
        "deny" => {
            let refusal = Refusal::Redirect {
                uri: request.redirect_uri,
                error: "access_denied",
                description: "The resource owner or authorization server denied the request.",
                state: request.state,
            };
            return Ok(refuse(refusal, lang, StatusCode::SEE_OTHER));
        }
        _ => return Ok(malformed()),
    }
    let code = new_secret();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO oauth_authorization_codes \
             (code_hash, application_id, user_id, redirect_uri, scopes, code_challenge, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, now() + interval '{CODE_TTL}')"
    )))
    .bind(digest(&code))
    .bind(request.app.id)
    .bind(user.id)
    .bind(&request.redirect_uri)
    .bind(request.scopes.to_string())
    .bind(&request.code_challenge)
    .execute(state.db.primary())
    .await
    .map_err(ApiError::from)?;
    info!(
        user_id = user.id,
        app_id = request.app.id,
        "authorization code issued"
    );
    if request.redirect_uri == OOB {
        return Ok(pages::respond(
            StatusCode::OK,
            pages::code(lang, &request.app.name, &code),
            &[],
        ));
    }
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = &request.state {
        pairs.push(("state", s));
    }
    Ok(match with_query(&request.redirect_uri, &pairs) {
        Some(location) => see_other(&location),
        None => malformed(),
    })
}

/// The application the request names, and the request checked against it.
async fn resolve(
    state: &AppState,
    params: &AuthParams,
) -> Result<Result<AuthRequest, Refusal>, ApiError> {
    let app = match params.client_id.as_deref() {
        Some(id) if !id.is_empty() && id.len() <= 128 => {
            Application::by_client_id(state, id).await?
        }
        _ => None,
    };
    Ok(check(params, app))
}

/// The signed-in user of a valid session cookie, with the session's nonce. A session ends
/// when the password changes or the account may no longer sign in.
async fn signed_in(
    state: &AppState,
    keys: &Keys,
    headers: &HeaderMap,
) -> Result<Option<(User, String)>, ApiError> {
    let Some(session) =
        cookie(headers, SESSION_COOKIE).and_then(|v| keys.open_session(v, unix_now()))
    else {
        return Ok(None);
    };
    let Some(user) = User::by_id(state, session.user_id).await? else {
        return Ok(None);
    };
    if user.refusal().is_some() || keys.password_tag(&user.password_hash) != session.password_tag {
        return Ok(None);
    }
    Ok(Some((user, session.nonce)))
}

fn sign_in_page(
    state: &AppState,
    keys: &Keys,
    params: &AuthParams,
    request: &AuthRequest,
    browser: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    let fields = params.pairs();
    let token = keys.csrf_token(browser, None);
    let page = pages::sign_in(&SignInPage {
        lang: pages::lang(params.lang.as_deref()),
        domain: &state.config.domain,
        app_name: &request.app.name,
        email,
        error,
        request: &fields,
        csrf_token: &token,
    });
    pages::respond(StatusCode::OK, page, &[browser_cookie(browser)])
}

fn consent_page(
    state: &AppState,
    keys: &Keys,
    params: &AuthParams,
    request: &AuthRequest,
    browser: &str,
    user: &User,
    nonce: &str,
) -> Response {
    let fields = params.pairs();
    let token = keys.csrf_token(browser, Some(nonce));
    let switch = params.authorize_path(true);
    let page = pages::consent(&ConsentPage {
        lang: pages::lang(params.lang.as_deref()),
        app_name: &request.app.name,
        website: request.app.website.as_deref(),
        username: &user.username,
        domain: &state.config.domain,
        scopes: request.scopes.iter().collect(),
        request: &fields,
        csrf_token: &token,
        switch_account: &switch,
    });
    pages::respond(StatusCode::OK, page, &[browser_cookie(browser)])
}

fn browser_cookie(browser: &str) -> HeaderValue {
    set_cookie(CSRF_COOKIE, browser, SESSION_TTL_SECS)
}

/// A refusal as a page, or as a redirect to the client with `error` (RFC 6749 §4.1.2.1).
fn refuse(refusal: Refusal, lang: &str, redirect_status: StatusCode) -> Response {
    match refusal {
        Refusal::Page(text) => page(StatusCode::BAD_REQUEST, lang, "Authorization failed", text),
        Refusal::Redirect {
            uri,
            error,
            description,
            state,
        } => {
            let mut pairs = vec![("error", error), ("error_description", description)];
            if let Some(s) = &state {
                pairs.push(("state", s));
            }
            match with_query(&uri, &pairs) {
                Some(location) => redirect(redirect_status, &location),
                // Out of band: there is no client to tell, only the user.
                None => page(
                    StatusCode::BAD_REQUEST,
                    lang,
                    "Authorization failed",
                    description,
                ),
            }
        }
    }
}

fn page(status: StatusCode, lang: &str, title: &str, text: &str) -> Response {
    pages::respond(status, pages::message(lang, title, text), &[])
}

fn malformed() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "en",
        "Authorization failed",
        "The authorization request is malformed.",
    )
}

fn see_other(location: &str) -> Response {
    redirect(StatusCode::SEE_OTHER, location)
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let Ok(value) = HeaderValue::from_str(location) else {
        return malformed();
    };
    let mut response = (status, [(header::LOCATION, value)]).into_response();
    pages::protect(&mut response);
    response
}

/// A query string or form body; repeated or malformed parameters make it unreadable.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_urlencoded::from_bytes(bytes).ok()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_carry_the_request_beside_their_own_fields() {
        let f: SignInForm = parse(
            b"client_id=c&redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob&scope=read+write\
              &email=a%40b&password=p%26q&csrf_token=t",
        )
        .unwrap();
        assert_eq!(f.request.client_id.as_deref(), Some("c"));
        assert_eq!(f.request.redirect_uri.as_deref(), Some(OOB));
        assert_eq!(f.request.scope.as_deref(), Some("read write"));
        assert_eq!((f.email.as_str(), f.password.as_str()), ("a@b", "p&q"));
        assert_eq!(f.csrf_token, "t");
        let d: DecisionForm = parse(b"client_id=c&decision=approve").unwrap();
        assert_eq!(d.decision, "approve");
        assert!(d.csrf_token.is_empty());
        assert!(parse::<AuthParams>(b"client_id=a&client_id=b").is_none());
    }
}
