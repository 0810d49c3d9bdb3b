//! Remote actors as local `accounts` rows: fetched (signed by the instance actor, through
//! the guarded fetcher), validated, stored, and fetched again once a day.

pub mod actor;
pub mod note;
pub mod parse;

use url::Url;

/// `host[:port]` of an http(s) URL, lower-cased: what "the same server" means when an
/// activity's objects are checked against its actor (a port counts, so that two servers
/// on one address stay apart).
pub fn origin(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// Whether two URLs are on the same server.
pub fn same_origin(a: &str, b: &str) -> bool {
    matches!((origin(a), origin(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_host_and_port() {
        assert!(same_origin(
            "https://M.example./users/a",
            "https://m.example/notes/1"
        ));
        assert!(!same_origin(
            "https://m.example/a",
            "https://evil.example/a"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:80/a",
            "http://127.0.0.1:81/a"
        ));
        assert!(!same_origin("ftp://m.example/a", "ftp://m.example/b"));
        assert_eq!(
            origin("https://m.example:443/x").as_deref(),
            Some("m.example")
        );
    }
}
