use std::net::SocketAddr;
use std::sync::Arc;

use axum::{Router, extract::State, routing::get};
use clap::Parser;
use fedi_operator::{controller, metrics::Metrics, telemetry};
use tracing::info;

/// Reconciles FediInstance resources into running fediverse servers.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address of the HTTP endpoint serving /metrics, /healthz and /readyz.
    #[arg(long, env = "FEDI_OPERATOR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Log as JSON lines (for clusters) instead of text.
    #[arg(long, env = "FEDI_OPERATOR_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.log_json);
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("no Kubernetes configuration found ({e}); set KUBECONFIG or run in a pod")
    })?;
    let metrics = Arc::new(Metrics::default());

    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move { m.encode() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .with_state(metrics.clone());
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.http_addr))?;
    info!(addr = %args.http_addr, "serving /metrics, /healthz and /readyz");
    tokio::spawn(async move { axum::serve(listener, app).await });

    controller::run(client, metrics).await
}
