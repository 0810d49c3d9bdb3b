//! Fetching ActivityPub documents from other servers, with the guards every fediverse server
//! has needed after an advisory:
//! - SSRF (Mastodon CVE-2026-22245, CVE-2026-46348; Fedify's redirect to a private address):
//!   the destination's addresses are checked after DNS resolution, by the resolver the
//!   connection itself uses (no second lookup an attacker's DNS could answer differently),
//!   and IP literals before connecting; a redirect is followed by hand, through the same
//!   checks, once at most.
//! - Slow or huge peers (CVE-2023-36461): connect, read and total timeouts; the body is read
//!   in chunks and cut at [`MAX_BODY`].
//! - Content posing as ActivityPub (CVE-2024-25623): only `application/activity+json` or
//!   `application/ld+json` with the ActivityStreams profile.
//! - Origin confusion (CVE-2024-23832): the document's `id` must equal the URL it was
//!   finally fetched from.
//!
//! Requests are signed by the instance actor: secure-mode peers (GoToSocial always) refuse
//! unsigned GETs.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::http::{Method, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use url::Url;

use super::domain_policy::DomainPolicy;
use super::keys::Signer;
use super::signatures;

/// Mastodon's limits for outbound requests.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// JSON documents larger than this are refused (Mastodon: 1 MB).
pub const MAX_BODY: usize = 1024 * 1024;

pub const ACCEPT: &str = "application/activity+json, application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("refused: {0} is not a public address")]
    Forbidden(String),
    #[error("more than one redirect")]
    TooManyRedirects,
    #[error("remote answered {0}")]
    Status(u16),
    #[error("not an ActivityPub document (content type {0:?})")]
    ContentType(String),
    #[error("response larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("timed out")]
    Timeout,
    #[error("not JSON: {0}")]
    Json(String),
    #[error("document id {id:?} differs from its URL {url}")]
    IdMismatch { id: String, url: String },
    #[error("request failed: {0}")]
    Network(String),
    #[error("{0} is blocked by this server's federation policy")]
    Blocked(String),
    #[error("more than {0} remote fetches for one activity")]
    TooManyFetches(usize),
}

/// Whether `ip` may be fetched: public unicast only, loopback only when allowed (tests).
pub fn is_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => allowed_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible addresses reach IPv4 hosts:
            // refused whatever they embed, no peer needs them.
            if v6.to_ipv4_mapped().is_some() || v6.segments()[..6] == [0; 6] && !v6.is_loopback() {
                return false;
            }
            if v6.is_loopback() {
                return allow_loopback;
            }
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && v6.segments()[1] == 0xff9b)) // NAT64 to IPv4
        }
    }
}

fn allowed_v4(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || a == 0
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Resolves with the system resolver, then refuses the name if any address is not public:
/// a name that resolves to one public and one private address is as dangerous as a private
/// one (the connection could use either).
#[derive(Clone)]
struct GuardedResolver {
    allow_loopback: bool,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = FetchError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, FetchError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), FetchError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| FetchError::Network(format!("cannot resolve {host}: {e}")))?
                .collect();
            if let Some(bad) = addrs.iter().find(|a| !is_allowed(a.ip(), allow_loopback)) {
                return Err(FetchError::Forbidden(format!("{host} ({})", bad.ip())));
            }
            Ok(addrs.into_iter())
        })
    }
}

type Client =
    hyper_util::client::legacy::Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

#[derive(Clone)]
pub struct Fetcher {
    client: Client,
    allow_loopback: bool,
    /// Suspended domains (and, in limited mode, all but the allowed) are never contacted.
    policy: DomainPolicy,
}

impl Fetcher {
    pub fn new(allow_loopback: bool) -> anyhow::Result<Self> {
        let tls = fedi_config::tls::public_client()?;
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_loopback });
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // The HTTPS wrapper passes https URLs down; the scheme is checked in `check_url`.
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self {
            client,
            allow_loopback,
            policy: DomainPolicy::default(),
        })
    }

    /// The same client, refusing the domains `policy` refuses.
    pub fn with_policy(mut self, policy: DomainPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Checks what can be checked before connecting: the scheme, and an IP-literal host
    /// (which never goes through the resolver).
    fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_loopback => {}
            other => return Err(FetchError::InvalidUrl(format!("scheme {other} refused"))),
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(FetchError::InvalidUrl("no host".into())),
        };
        if let Some(ip) = ip
            && !is_allowed(ip, self.allow_loopback)
        {
            return Err(FetchError::Forbidden(ip.to_string()));
        }
        if self.policy.refuses_url(url.as_str()) {
            return Err(FetchError::Blocked(
                url.host_str().unwrap_or_default().to_string(),
            ));
        }
        Ok(())
    }

    /// GETs the ActivityPub document at `url`, signed by `signer`, and checks its content
    /// type and that its `id` is the URL it came from. The whole exchange is bounded by
    /// [`TOTAL_TIMEOUT`].
    pub async fn get_object(&self, url: &str, signer: &Signer) -> Result<Value, FetchError> {
        budget::spend()?;
        tokio::time::timeout(TOTAL_TIMEOUT, self.get_object_inner(url, signer))
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    /// GETs `url`, following one redirect at most, each hop through the address checks.
    /// Returns the final URL and its response.
    async fn get_following(
        &self,
        url: &str,
        accept: &str,
        signer: Option<&Signer>,
    ) -> Result<(Url, hyper::Response<Incoming>), FetchError> {
        let mut url = Url::parse(url).map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
        url.set_fragment(None);
        let mut redirects = 0;
        loop {
            self.check_url(&url)?;
            let mut request = axum::http::Request::get(url.as_str())
                .header(header::ACCEPT, accept)
                .header(
                    header::USER_AGENT,
                    concat!("fedi/", env!("CARGO_PKG_VERSION")),
                );
            if let Some(signer) = signer {
                let signed =
                    signatures::sign(signer, &Method::GET, &url, None, accept, SystemTime::now());
                request = request
                    .header(header::HOST, &signed.host)
                    .header(header::DATE, &signed.date)
                    .header("signature", &signed.signature);
            }
            let request = request
                .body(Full::default())
                .map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
            let response = self.client.request(request).await.map_err(request_error)?;
            if !response.status().is_redirection() {
                return Ok((url, response));
            }
            redirects += 1;
            if redirects > 1 {
                return Err(FetchError::TooManyRedirects);
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or(FetchError::Status(response.status().as_u16()))?;
            url = url
                .join(location)
                .map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
            url.set_fragment(None);
        }
    }

    /// GETs a plain JSON document (WebFinger's JRD), unsigned as WebFinger is, through the
    /// same guards as [`Self::get_object`]; no ActivityPub checks.
    pub async fn get_json(&self, url: &str, accept: &str) -> Result<Value, FetchError> {
        tokio::time::timeout(TOTAL_TIMEOUT, async {
            let (_, response) = self.get_following(url, accept, None).await?;
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            let body = read_limited(response.into_body()).await?;
            serde_json::from_slice(&body).map_err(|e| FetchError::Json(e.to_string()))
        })
        .await
        .map_err(|_| FetchError::Timeout)?
    }

    /// GETs a web page or file (link previews, remote media), unsigned, through the same
    /// guards and timeouts: at most `limit` bytes of its body, the rest never read.
    pub async fn get_capped(
        &self,
        url: &str,
        accept: &str,
        limit: usize,
    ) -> Result<Capped, FetchError> {
        tokio::time::timeout(TOTAL_TIMEOUT, async {
            let (url, response) = self.get_following(url, accept, None).await?;
            let content_type = successful_content_type(&response)?;
            let mut body = response.into_body();
            let (mut bytes, mut cut) = (Vec::new(), false);
            while let Some(frame) = tokio::time::timeout(READ_TIMEOUT, body.frame())
                .await
                .map_err(|_| FetchError::Timeout)?
            {
                let frame = frame.map_err(|e| FetchError::Network(e.to_string()))?;
                if let Ok(data) = frame.into_data() {
                    let room = limit - bytes.len();
                    bytes.extend_from_slice(&data[..data.len().min(room)]);
                    if data.len() > room {
                        cut = true;
                        break;
                    }
                }
            }
            Ok(Capped {
                url,
                content_type,
                bytes,
                cut,
            })
        })
        .await
        .map_err(|_| FetchError::Timeout)?
    }

    async fn get_object_inner(&self, url: &str, signer: &Signer) -> Result<Value, FetchError> {
        let (url, response) = self.get_following(url, ACCEPT, Some(signer)).await?;
        let content_type = successful_content_type(&response)?;
        if !is_activitypub_type(&content_type) {
            return Err(FetchError::ContentType(content_type));
        }
        let body = read_limited(response.into_body()).await?;
        let document: Value =
            serde_json::from_slice(&body).map_err(|e| FetchError::Json(e.to_string()))?;
        let id = document
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if id != url.as_str() {
            return Err(FetchError::IdMismatch {
                id: id.to_string(),
                url: url.to_string(),
            });
        }
        Ok(document)
    }
}

/// The Content-Type of a 2xx response (empty when absent); any other status is an error.
fn successful_content_type<B>(response: &axum::http::Response<B>) -> Result<String, FetchError> {
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    Ok(response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default()
        .to_string())
}

impl Fetcher {
    /// POSTs an activity to an inbox, signed by `signer` over `(request-target) host date
    /// digest content-type`, through the same address checks as fetches and within
    /// [`TOTAL_TIMEOUT`]. Redirects are not followed (a moved inbox is the sender's problem to
    /// learn from the actor). Returns the status; the body is discarded, read at most
    /// [`MAX_BODY`].
    pub async fn post_activity(
        &self,
        url: &str,
        body: Bytes,
        signer: &Signer,
    ) -> Result<u16, FetchError> {
        tokio::time::timeout(TOTAL_TIMEOUT, async {
            let url = Url::parse(url).map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
            self.check_url(&url)?;
            let signed = signatures::sign(
                signer,
                &Method::POST,
                &url,
                Some(&body),
                ACTIVITY_JSON,
                SystemTime::now(),
            );
            let request = axum::http::Request::post(url.as_str())
                .header(header::CONTENT_TYPE, ACTIVITY_JSON)
                .header(header::HOST, &signed.host)
                .header(header::DATE, &signed.date)
                .header("digest", signed.digest.as_deref().unwrap_or_default())
                .header("signature", &signed.signature)
                .header(
                    header::USER_AGENT,
                    concat!("fedi/", env!("CARGO_PKG_VERSION")),
                )
                .body(Full::new(body))
                .map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
            let response = self.client.request(request).await.map_err(request_error)?;
            let status = response.status().as_u16();
            // Read (bounded) so the connection can go back to the pool; a peer answering
            // with a huge body only loses its connection.
            let _ = read_limited(response.into_body()).await;
            Ok(status)
        })
        .await
        .map_err(|_| FetchError::Timeout)?
    }
}

/// How many documents one incoming activity may make us fetch (keys, actors, objects,
/// reply parents): a peer chaining replies or actors without end must not keep a worker
/// fetching for it (Mastodon caps the reply chain it follows at 5 and its fetches per
/// activity similarly).
pub mod budget {
    use std::cell::Cell;
    use std::future::Future;

    use super::FetchError;

    /// Fetches allowed while one activity is processed.
    pub const PER_ACTIVITY: usize = 10;

    tokio::task_local! {
        static LEFT: Cell<usize>;
    }

    /// Runs `work` with [`PER_ACTIVITY`] fetches allowed to it (the task, not the process).
    pub async fn limited<F: Future>(work: F) -> F::Output {
        LEFT.scope(Cell::new(PER_ACTIVITY), work).await
    }

    /// Takes one fetch from the running budget; outside of one, fetches are unlimited.
    pub(super) fn spend() -> Result<(), FetchError> {
        LEFT.try_with(|left| match left.get() {
            0 => Err(FetchError::TooManyFetches(PER_ACTIVITY)),
            n => {
                left.set(n - 1);
                Ok(())
            }
        })
        .unwrap_or(Ok(()))
    }
}

/// What [`Fetcher::get_capped`] read: the final URL (after a redirect), the content type,
/// and the body up to the limit; `cut` when there was more.
pub struct Capped {
    pub url: Url,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub cut: bool,
}

/// The content type of the activities we send.
pub const ACTIVITY_JSON: &str = "application/activity+json";

/// The resolver's refusal arrives wrapped in the client's connect error.
fn request_error(e: hyper_util::client::legacy::Error) -> FetchError {
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        if let Some(FetchError::Forbidden(what)) = s.downcast_ref::<FetchError>() {
            return FetchError::Forbidden(what.clone());
        }
        source = s.source();
    }
    let mut message = e.to_string();
    if let Some(cause) = std::error::Error::source(&e) {
        message = format!("{message}: {cause}");
    }
    FetchError::Network(message)
}

/// The body, frame by frame: each frame within [`READ_TIMEOUT`], the whole under
/// [`MAX_BODY`] (whatever `Content-Length` claims).
async fn read_limited(mut body: Incoming) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    loop {
        let frame = tokio::time::timeout(READ_TIMEOUT, body.frame())
            .await
            .map_err(|_| FetchError::Timeout)?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| FetchError::Network(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_BODY {
                return Err(FetchError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// `application/activity+json`, or `application/ld+json` with the ActivityStreams profile
/// (parameters in any order and case, the profile quoted or not).
pub fn is_activitypub_type(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/activity+json" => true,
        "application/ld+json" => parts.any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("profile")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|p| p == "https://www.w3.org/ns/activitystreams")
            })
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        for bad in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "ff02::1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(!is_allowed(ip, false), "{bad} must be refused");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "2001:4860:4860::8888",
            "2a01::1",
        ] {
            assert!(is_allowed(good.parse().unwrap(), false), "{good} is public");
        }
    }

    #[test]
    fn the_test_setting_opens_loopback_only() {
        assert!(is_allowed("127.0.0.1".parse().unwrap(), true));
        assert!(is_allowed("::1".parse().unwrap(), true));
        for still_bad in [
            "10.0.0.1",
            "192.168.0.1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
        ] {
            assert!(!is_allowed(still_bad.parse().unwrap(), true), "{still_bad}");
        }
    }

    #[test]
    fn only_activitypub_content_types_are_accepted() {
        for ok in [
            "application/activity+json",
            "application/activity+json; charset=utf-8",
            "Application/Activity+JSON",
            "application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"",
            "application/ld+json;charset=utf-8;profile=https://www.w3.org/ns/activitystreams",
        ] {
            assert!(is_activitypub_type(ok), "{ok}");
        }
        for bad in [
            "application/json",
            "application/ld+json",
            "application/ld+json; profile=\"https://example.com/other\"",
            "text/html",
            "",
            "application/activity+jsonx",
        ] {
            assert!(!is_activitypub_type(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn literal_private_addresses_and_plain_http_are_refused_before_connecting() {
        let fetcher = Fetcher::new(false).unwrap();
        let pair = super::super::keys::generate().unwrap();
        let signer = Signer::new(
            "https://ours.example/actor#main-key".into(),
            &pair.private_pem,
        )
        .unwrap();
        for (url, forbidden) in [
            ("https://127.0.0.1/users/a", true),
            ("https://[::1]/users/a", true),
            ("https://169.254.169.254/latest/meta-data", true),
            ("https://[::ffff:10.0.0.1]/x", true),
            ("http://remote.example/users/a", false),
            ("file:///etc/passwd", false),
        ] {
            let err = fetcher.get_object(url, &signer).await.unwrap_err();
            assert_eq!(
                matches!(err, FetchError::Forbidden(_)),
                forbidden,
                "{url}: {err}"
            );
            assert!(matches!(
                err,
                FetchError::Forbidden(_) | FetchError::InvalidUrl(_)
            ));
        }
        // A name resolving to loopback is refused by the resolver.
        let err = fetcher
            .get_object("https://localhost/users/a", &signer)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Forbidden(_)), "{err}");
    }
}
