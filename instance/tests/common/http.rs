//! What the HTTP tests share: an answer read in full, and multipart bodies written by hand
//! (the tests' reqwest is built without multipart, and a test must be able to lie about a
//! file's name and type).

use reqwest::header::HeaderMap;
use serde_json::Value;

/// A whole answer: status, headers and body.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Self {
        Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// `rel` -> URL of the `Link` header.
    pub fn link(&self, rel: &str) -> Option<String> {
        let value = self.header("link")?;
        value.split(", ").find_map(|part| {
            let (url, params) = part.split_once("; ")?;
            (params == format!("rel=\"{rel}\"")).then(|| {
                url.trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "{}", self.text());
        self
    }

    /// A 422 whose message contains `needle`.
    #[track_caller]
    pub fn refused(self, needle: &str) {
        let reply = self.expect(422);
        let error = reply.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    }
}

/// Gives rustls its crypto provider: reqwest is built without a default one (see
/// Cargo.toml), and a client built before this panics. Any number of calls is fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub const BOUNDARY: &str = "fedi-test-boundary-7f3a";

/// A multipart/form-data body, part by part.
#[derive(Default)]
pub struct Multipart {
    parts: Vec<u8>,
}

impl Multipart {
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.parts.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n\
                 {value}\r\n"
            )
            .as_bytes(),
        );
        self
    }

    pub fn file(mut self, name: &str, file_name: &str, content_type: &str, bytes: &[u8]) -> Self {
        self.parts.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        self.parts.extend_from_slice(bytes);
        self.parts.extend_from_slice(b"\r\n");
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.parts
            .extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        self.parts
    }

    pub fn content_type() -> String {
        format!("multipart/form-data; boundary={BOUNDARY}")
    }
}
