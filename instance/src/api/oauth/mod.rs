//! OAuth2 as Mastodon serves it (Doorkeeper's endpoints and answers): application
//! registration, the authorization-code flow with PKCE through server-rendered sign-in and
//! consent pages, the token endpoint's grants, revocation, and the RFC 8414 metadata.
//!
//! Codes, tokens and client secrets are random 256-bit values stored as SHA-256 digests;
//! none of them is ever logged.

mod apps;
mod authorize;
mod client;
mod pages;
mod password_reset;
mod pkce;
mod request;
mod revoke;
mod session;
mod token;
mod users;
mod well_known;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// The redirect URI of clients that cannot receive a redirect: the code is shown instead.
const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/apps", post(apps::create))
        .route(
            "/api/v1/apps/verify_credentials",
            get(apps::verify_credentials),
        )
        .route(
            "/oauth/authorize",
            get(authorize::show).post(authorize::decide),
        )
        // toot's `/oauth/authorize/` arrives here too: `api::serve` trims the slash.
        .route("/oauth/sign_in", post(authorize::sign_in))
        .route("/oauth/token", post(token::exchange))
        .route("/oauth/revoke", post(revoke::revoke))
        .route("/auth/password/new", get(password_reset::new))
        .route("/auth/password/edit", get(password_reset::edit))
        .route(
            "/auth/password",
            post(password_reset::create).put(password_reset::update),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(well_known::metadata),
        )
}
