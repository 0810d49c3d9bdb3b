//! Small checks shared by the observers: a TCP handshake, a StatefulSet's readiness, one
//! value of a Secret. Each answers with what a condition should say when it fails.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{Readiness, Scope};

/// Long enough for a server across a region, short enough not to hold a reconcile.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether something accepts TCP connections at `host:port`.
pub async fn tcp(host: &str, port: u16) -> Result<(), String> {
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot connect to {host}:{port}: {e}")),
        Err(_) => Err(format!(
            "cannot connect to {host}:{port}: no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// `None` when every pod of the StatefulSet is ready; otherwise what to report.
pub async fn statefulset(scope: &Scope<'_>, name: &str, what: &str) -> Option<Readiness> {
    let api: Api<StatefulSet> = Api::namespaced(scope.client.clone(), scope.namespace);
    let sts = match api.get_opt(name).await {
        Ok(Some(sts)) => sts,
        Ok(None) => {
            return Some(Readiness::waiting(
                "Creating",
                format!("StatefulSet {name} does not exist yet."),
            ));
        }
        Err(e) => return Some(kube_error(e)),
    };
    let desired = sts.spec.replicas.unwrap_or(1);
    let status = sts.status.unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let current = status.observed_generation >= sts.metadata.generation;
    if ready >= desired && current {
        return None;
    }
    Some(Readiness::waiting(
        "PodsNotReady",
        format!("{what}: {ready}/{desired} pods of StatefulSet {name} ready."),
    ))
}

/// The value under `key` of Secret `name`, which the operator needs to talk to a service.
/// Never logged; a failure names the Secret and key only.
pub async fn secret_value(scope: &Scope<'_>, name: &str, key: &str) -> Result<String, Readiness> {
    let api: Api<Secret> = Api::namespaced(scope.client.clone(), scope.namespace);
    let secret = match api.get_opt(name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(Readiness::waiting(
                "SecretNotFound",
                format!(
                    "Secret {name} does not exist in namespace {}.",
                    scope.namespace
                ),
            ));
        }
        Err(e) => return Err(kube_error(e)),
    };
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned());
    let from_string_data = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .cloned()
    };
    from_data.or_else(from_string_data).ok_or_else(|| {
        Readiness::waiting(
            "SecretKeyMissing",
            format!("Secret {name} has no key {key}."),
        )
    })
}

pub fn kube_error(e: kube::Error) -> Readiness {
    Readiness::waiting(
        "KubernetesApiError",
        format!("reading the dependency's state failed: {e}"),
    )
}

/// `host` and `port` of an `http(s)://host[:port]/...` URL.
pub fn url_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
    .filter(|(h, _)| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_their_host_and_port() {
        let cases = [
            ("https://search.example", Some(("search.example", 443))),
            ("http://search:9200/", Some(("search", 9200))),
            (
                "https://u:p@search.example:9243/x",
                Some(("search.example", 9243)),
            ),
            ("http://[::1]:9200", Some(("::1", 9200))),
            ("ftp://x", None),
            ("http://", None),
            ("http://h:notaport", None),
        ];
        for (url, want) in cases {
            let got = url_host_port(url);
            assert_eq!(got.as_ref().map(|(h, p)| (h.as_str(), *p)), want, "{url}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_with_its_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(tcp("127.0.0.1", port).await.is_ok());
        drop(listener);
        let err = tcp("127.0.0.1", port).await.unwrap_err();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    }
}
