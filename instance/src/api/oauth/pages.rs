//! The HTML of the authorization flow. maud escapes every interpolated value; the pages run
//! no script, load nothing, and cannot be framed.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f3f3f7;color:#1f2328;margin:0;line-height:1.45}\
main{max-width:26rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:10px;box-shadow:0 1px 4px rgba(0,0,0,.12)}\
h1{font-size:1.3rem;margin:0 0 1rem}\
label{display:block;margin:.9rem 0 .3rem;font-weight:600}\
input[type=email],input[type=password],input[type=text]{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #c6c6d0;border-radius:6px;font-size:1rem}\
.actions{display:flex;gap:.6rem;margin-top:1.3rem}\
button{flex:1;padding:.65rem 1rem;border:0;border-radius:6px;font-size:1rem;cursor:pointer}\
.primary{background:#563acc;color:#fff}\
.secondary{background:#e7e7ef;color:#1f2328}\
.error{background:#fdecec;color:#8a1c1c;padding:.6rem .8rem;border-radius:6px}\
.muted{color:#5e6470;font-size:.9rem}\
ul{padding-left:1.2rem}li{margin:.3rem 0}\
code{background:#f3f3f7;padding:.1rem .3rem;border-radius:4px}\
#code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9rem;line-height:1.6}\
";

/// The stylesheet is inline; the policy allows exactly it by its hash.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(CSS.as_bytes()));
    // No `form-action`: browsers apply it to the redirect that follows the consent form,
    // which goes to the client's own (often custom-scheme) URI.
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; base-uri 'none'"
    ))
    .expect("a valid header value")
});

/// The headers every page and every redirect of the flow carries.
pub(super) fn protect(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// A page as a response, with `cookies` set.
pub(super) fn respond(status: StatusCode, page: Markup, cookies: &[HeaderValue]) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response();
    protect(&mut response);
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    response
}

/// `lang` as given by the client, if it looks like a language tag; else English (the only
/// language the pages have so far).
pub(super) fn lang(requested: Option<&str>) -> &str {
    requested
        .filter(|l| {
            (2..=12).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .unwrap_or("en")
}

pub(super) fn layout(lang: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body { main { (body) } }
        }
    }
}

/// Hidden inputs that carry the authorization request from page to page.
fn hidden(fields: &[(&str, String)]) -> Markup {
    html! {
        @for (name, value) in fields {
            input type="hidden" name=(name) value=(value);
        }
    }
}

pub(super) struct SignInPage<'a> {
    pub lang: &'a str,
    pub domain: &'a str,
    pub app_name: &'a str,
    pub email: &'a str,
    pub error: Option<&'a str>,
    pub request: &'a [(&'a str, String)],
    pub csrf_token: &'a str,
}

pub(super) fn sign_in(p: &SignInPage) -> Markup {
    layout(
        p.lang,
        &format!("Sign in to {}", p.domain),
        html! {
            h1 { "Sign in to " (p.domain) }
            p.muted { "to authorize " strong { (p.app_name) } }
            @if let Some(e) = p.error { p.error role="alert" { (e) } }
            form method="post" action="/oauth/sign_in" {
                (hidden(p.request))
                input type="hidden" name="csrf_token" value=(p.csrf_token);
                label for="email" { "Email address" }
                input id="email" type="email" name="email" value=(p.email) required
                    autocomplete="email" autofocus maxlength="320";
                label for="password" { "Password" }
                input id="password" type="password" name="password" required
                    autocomplete="current-password" maxlength="1024";
                div.actions { button.primary type="submit" { "Sign in" } }
            }
            p.muted { a href="/auth/password/new" { "Forgot your password?" } }
        },
    )
}

pub(super) struct ConsentPage<'a> {
    pub lang: &'a str,
    pub app_name: &'a str,
    pub website: Option<&'a str>,
    pub username: &'a str,
    pub domain: &'a str,
    pub scopes: Vec<&'a str>,
    pub request: &'a [(&'a str, String)],
    pub csrf_token: &'a str,
    pub switch_account: &'a str,
}

pub(super) fn consent(p: &ConsentPage) -> Markup {
    layout(
        p.lang,
        "Authorization required",
        html! {
            h1 { "Authorize " (p.app_name) "?" }
            @if let Some(site) = p.website { p.muted { (site) } }
            p {
                "This application asks for access to your account "
                strong { "@" (p.username) "@" (p.domain) } ". It will be able to:"
            }
            ul {
                @for scope in &p.scopes {
                    li { (describe(scope)) " " span.muted { "(" code { (scope) } ")" } }
                }
            }
            form method="post" action="/oauth/authorize" {
                (hidden(p.request))
                input type="hidden" name="csrf_token" value=(p.csrf_token);
                div.actions {
                    button.secondary type="submit" name="decision" value="deny" { "Deny" }
                    button.primary type="submit" name="decision" value="approve" { "Authorize" }
                }
            }
            p.muted { "Not you? " a href=(p.switch_account) { "Sign in with another account" } }
        },
    )
}

/// The out-of-band flow: the user copies the code into the application.
pub(super) fn code(lang: &str, app_name: &str, code: &str) -> Markup {
    layout(
        lang,
        "Authorization code",
        html! {
            h1 { "Authorization code" }
            p { "Copy this code and paste it into " strong { (app_name) } ":" }
            input id="code" type="text" readonly value=(code) aria-label="Authorization code";
            p.muted { "It works once, within ten minutes." }
        },
    )
}

pub(super) fn message(lang: &str, title: &str, text: &str) -> Markup {
    layout(
        lang,
        title,
        html! {
            h1 { (title) }
            p { (text) }
        },
    )
}

/// What a scope lets the application do, in words.
fn describe(scope: &str) -> String {
    match scope {
        "read" => "Read all your account's data".into(),
        "write" => "Modify all your account's data".into(),
        "follow" => "Modify account relationships".into(),
        "push" => "Receive your push notifications".into(),
        "profile" => "Read only your account's profile information".into(),
        "admin:read" => "Read all data on the server".into(),
        "admin:write" => "Modify all data on the server".into(),
        _ => {
            let (head, what) = scope.rsplit_once(':').unwrap_or(("", scope));
            let what = what.replace('_', " ");
            match head {
                "read" => format!("See your {what}"),
                "write" => format!("Change your {what}"),
                "admin:read" => format!("Read all {what} on the server"),
                "admin:write" => format!("Moderate {what} on the server"),
                _ => scope.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_values_are_escaped() {
        let request = [("state", "\"><script>alert(1)</script>".to_string())];
        let page = sign_in(&SignInPage {
            lang: "en\"><script>",
            domain: "s.example",
            app_name: "<img src=x onerror=alert(1)>",
            email: "a\"@b",
            error: Some("<b>no</b>"),
            request: &request,
            csrf_token: "t",
        })
        .into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<b>no"), "{page}");
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{page}"
        );
        assert!(page.contains("value=\"a&quot;@b\""), "{page}");
        assert!(page.contains("href=\"/auth/password/new\""), "{page}");
        // The browser hashes the element's text: it must be the stylesheet, byte for byte.
        assert!(page.contains(&format!("<style>{CSS}</style>")), "{page}");
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_stylesheet() {
        let csp = CSP.to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("script-src"));
        assert!(!csp.contains("unsafe-inline"));
    }

    #[test]
    fn language_tags_are_checked_and_scopes_described() {
        assert_eq!(lang(Some("de")), "de");
        assert_eq!(lang(Some("pt-BR")), "pt-BR");
        assert_eq!(lang(Some("x\"")), "en");
        assert_eq!(lang(None), "en");
        assert_eq!(describe("read:statuses"), "See your statuses");
        assert_eq!(
            describe("admin:write:domain_blocks"),
            "Moderate domain blocks on the server"
        );
    }
}
