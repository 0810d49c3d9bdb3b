//! The browser side of the authorization pages: a signed session cookie naming the signed-in
//! user, and CSRF tokens for the forms. Both are HMAC-SHA256 over keys derived from
//! `FEDI_SECRET_KEY_BASE`, so any replica can check what another one issued and nothing is
//! stored server-side.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fedi_config::ServerConfig;
use ring::hmac;
use tracing::warn;

/// `__Host-`: the browser refuses the cookie unless it is Secure, has `Path=/` and no
/// Domain, so a sibling subdomain cannot plant or overwrite it.
pub(super) const SESSION_COOKIE: &str = "__Host-fedi_session";
pub(super) const CSRF_COOKIE: &str = "__Host-fedi_csrf";

/// Long enough to sign in and approve, short enough that a shared computer forgets.
pub(super) const SESSION_TTL_SECS: i64 = 60 * 60;

/// Used when the configuration has no secret key base (tests, local runs): sessions then
/// belong to this process alone.
static FALLBACK_BASE: LazyLock<[u8; 32]> = LazyLock::new(|| {
    warn!(
        "FEDI_SECRET_KEY_BASE is not set: sign-in sessions use a random key of this process \
         and do not survive a restart or move between replicas"
    );
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random generator works");
    bytes
});

pub(super) struct Keys {
    session: hmac::Key,
    csrf: hmac::Key,
    password: hmac::Key,
}

/// What a valid session cookie says.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Session {
    pub user_id: i64,
    /// Random per sign-in: the consent form's CSRF token is bound to it.
    pub nonce: String,
    /// Ties the session to the password it was opened with: a password change ends it.
    pub password_tag: String,
}

impl Keys {
    pub fn new(config: &ServerConfig) -> Self {
        match &config.secret_key_base {
            Some(base) => Self::derive(base.expose().as_bytes()),
            None => Self::derive(&*FALLBACK_BASE),
        }
    }

    /// One key per purpose, so that a value signed for one use never verifies as another.
    fn derive(base: &[u8]) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, base);
        let sub =
            |label: &[u8]| hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(&root, label).as_ref());
        Self {
            session: sub(b"fedi-server oauth session v1"),
            csrf: sub(b"fedi-server oauth csrf v1"),
            password: sub(b"fedi-server oauth password tag v1"),
        }
    }

    /// A short keyed fingerprint of a password hash (the hash itself never leaves the
    /// database, not even inside a signed cookie).
    pub fn password_tag(&self, password_hash: &str) -> String {
        let tag = hmac::sign(&self.password, password_hash.as_bytes());
        URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16])
    }

    /// The cookie value of a new session: `user.issued.nonce.password_tag.signature`.
    pub fn seal_session(&self, user_id: i64, password_hash: &str, now: i64) -> String {
        let payload = format!(
            "{user_id}.{now}.{}.{}",
            random_token(),
            self.password_tag(password_hash)
        );
        let sig = hmac::sign(&self.session, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// The session of a cookie value, if its signature holds and it is not older than
    /// `SESSION_TTL_SECS` (nor from the future) at `now`.
    pub fn open_session(&self, value: &str, now: i64) -> Option<Session> {
        let (payload, sig) = value.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        hmac::verify(&self.session, payload.as_bytes(), &sig).ok()?;
        let mut parts = payload.split('.');
        let (Some(user), Some(issued), Some(nonce), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let issued: i64 = issued.parse().ok()?;
        if issued > now + 60 || now - issued > SESSION_TTL_SECS {
            return None;
        }
        Some(Session {
            user_id: user.parse().ok()?,
            nonce: nonce.to_string(),
            password_tag: tag.to_string(),
        })
    }

    /// The token a form carries: bound to the browser's CSRF cookie and, once signed in, to
    /// the session, so a token from the sign-in form cannot approve anything.
    pub fn csrf_token(&self, browser: &str, session_nonce: Option<&str>) -> String {
        let sig = hmac::sign(&self.csrf, csrf_message(browser, session_nonce).as_bytes());
        URL_SAFE_NO_PAD.encode(sig.as_ref())
    }

    pub fn csrf_valid(&self, browser: &str, session_nonce: Option<&str>, token: &str) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        hmac::verify(
            &self.csrf,
            csrf_message(browser, session_nonce).as_bytes(),
            &sig,
        )
        .is_ok()
    }
}

fn csrf_message(browser: &str, session_nonce: Option<&str>) -> String {
    format!("{browser}\0{}", session_nonce.unwrap_or(""))
}

/// 128 random bits, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random generator works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The browser's CSRF cookie if it holds one of ours, else a new value to set.
pub(super) fn browser_id(headers: &HeaderMap) -> String {
    cookie(headers, CSRF_COOKIE)
        .filter(|v| v.len() == 22 && URL_SAFE_NO_PAD.decode(v).is_ok())
        .map(str::to_string)
        .unwrap_or_else(random_token)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A `Set-Cookie` value: HttpOnly (no script reads it), Secure, and SameSite=Lax so that
/// the client's top-level navigation to the authorize page still carries the session.
pub(super) fn set_cookie(name: &str, value: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
    ))
    .expect("cookie values are base64url, digits and dots")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(base: &str) -> Keys {
        Keys::derive(base.as_bytes())
    }

    #[test]
    fn a_session_opens_only_with_its_key_intact_and_in_time() {
        let k = keys("a-key-base-of-sufficient-length-0001");
        let now = 1_800_000_000;
        let cookie = k.seal_session(42, "$argon2id$hash", now);
        let s = k.open_session(&cookie, now + 10).unwrap();
        assert_eq!(s.user_id, 42);
        assert_eq!(s.password_tag, k.password_tag("$argon2id$hash"));
        assert_ne!(s.password_tag, k.password_tag("$argon2id$other"));

        assert!(
            k.open_session(&cookie, now + SESSION_TTL_SECS + 1)
                .is_none()
        );
        assert!(
            k.open_session(&cookie, now - 3600).is_none(),
            "from the future"
        );
        let other = keys("another-key-base-of-sufficient-length");
        assert!(other.open_session(&cookie, now).is_none());

        // Another user id under the same signature.
        let forged = cookie.replacen("42.", "43.", 1);
        assert!(k.open_session(&forged, now).is_none());
        for bad in ["", "x", "1.2.3.4.5", "1.2.3.4", &format!("{cookie}x")] {
            assert!(k.open_session(bad, now).is_none(), "{bad}");
        }
        assert_ne!(
            k.seal_session(42, "h", now),
            k.seal_session(42, "h", now),
            "each sign-in has its own nonce"
        );
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_browser_and_the_session() {
        let k = keys("a-key-base-of-sufficient-length-0001");
        let t = k.csrf_token("browser-a", None);
        assert!(k.csrf_valid("browser-a", None, &t));
        assert!(!k.csrf_valid("browser-b", None, &t));
        assert!(!k.csrf_valid("browser-a", Some("n1"), &t));
        let signed_in = k.csrf_token("browser-a", Some("n1"));
        assert!(k.csrf_valid("browser-a", Some("n1"), &signed_in));
        assert!(!k.csrf_valid("browser-a", Some("n2"), &signed_in));
        assert!(!k.csrf_valid("browser-a", None, ""));
        assert!(!k.csrf_valid("browser-a", None, "not base64 !"));
        // A session signature is no CSRF token and the other way round.
        let session = k.seal_session(1, "h", 0);
        let sig = session.rsplit_once('.').unwrap().1;
        assert!(!k.csrf_valid("browser-a", None, sig));
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("c=\"3\""));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "d"), None);
        let v = set_cookie(SESSION_COOKIE, "v", 60);
        let v = v.to_str().unwrap();
        for attr in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=60"] {
            assert!(v.contains(attr), "{v}");
        }
    }

    #[test]
    fn a_browser_id_is_kept_only_when_it_is_one_of_ours() {
        let mut h = HeaderMap::new();
        let id = random_token();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{CSRF_COOKIE}={id}")).unwrap(),
        );
        assert_eq!(browser_id(&h), id);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{CSRF_COOKIE}=short")).unwrap(),
        );
        assert_ne!(browser_id(&h), "short");
    }
}
