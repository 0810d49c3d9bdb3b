//! SearchReady. Search is optional: without it the server searches with PostgreSQL's
//! full-text search, which is ready whenever the database is. The managed OpenSearch is
//! ready when its pods are (their readiness probe asks the cluster's health); an external
//! one when it accepts connections.

use super::probe;
use super::{Readiness, Scope};

pub async fn observe(scope: &Scope<'_>) -> Readiness {
    let Some(search) = &scope.fedi.spec.search else {
        return Readiness::ready(
            "NotConfigured",
            "No search cluster: the server uses PostgreSQL full-text search.",
        );
    };
    if let Some(external) = &search.external {
        let Some((host, port)) = probe::url_host_port(&external.url) else {
            return Readiness::waiting(
                "InvalidSearchUrl",
                format!("spec.search.external.url {} has no host.", external.url),
            );
        };
        return match probe::tcp(&host, port).await {
            Ok(()) => Readiness::ready(
                "Reachable",
                format!("The search cluster at {host}:{port} accepts connections."),
            ),
            Err(e) => Readiness::waiting("SearchUnreachable", e),
        };
    }
    let name = format!("{}-search", scope.name);
    match probe::statefulset(scope, &name, "OpenSearch").await {
        Some(waiting) => waiting,
        None => Readiness::ready(
            "ClusterHealthy",
            format!("Every OpenSearch node of {name} is ready."),
        ),
    }
}
