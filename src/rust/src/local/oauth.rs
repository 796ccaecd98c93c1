//! OAuth M2M as a workspace serves it: discovery at
//! `/oidc/.well-known/oauth-authorization-server` (after host metadata at
//! `/.well-known/databricks-config`) and the client-credentials
//! grant at `POST /oidc/v1/token` (client id and secret in HTTP Basic auth or
//! in the form). Tokens are issued and checked by `access`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::access::Access;
use super::extract::{BasicAuth, BodyLimit, Fields, OAuth};
use super::reply::{self, oauth as oauth_error, Reply};
use super::state::Shared;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/.well-known/databricks-config", get(host_metadata))
        .route("/oidc/.well-known/oauth-authorization-server", get(discovery))
        .route("/oidc/v1/token", post(token))
        .layer(BodyLimit::SMALL.layer())
}

async fn discovery(State(a): State<Arc<Access>>) -> Reply {
    let base = a.url();
    reply::ok(json!({
        "issuer": format!("{base}/oidc"),
        "authorization_endpoint": format!("{base}/oidc/v1/authorize"),
        "token_endpoint": format!("{base}/oidc/v1/token"),
        "jwks_uri": format!("{base}/oidc/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["code"],
        "scopes_supported": ["all-apis", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

/// Host metadata, probed by the newest SDKs before anything else.
async fn host_metadata(State(a): State<Arc<Access>>) -> Reply {
    reply::ok(json!({"oidc_endpoint": format!("{}/oidc", a.url()), "workspace_id": WORKSPACE_ID}))
}

/// The workspace id the local cluster reports.
pub const WORKSPACE_ID: &str = "1000000000000001";

async fn token(State(a): State<Arc<Access>>, BasicAuth(basic): BasicAuth, Fields(p, ..): Fields<OAuth>) -> Reply {
    let Some((want_id, want_secret)) = &a.client else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "OAuth M2M is not enabled on this local cluster (start it with client_id and client_secret)",
        ));
    };
    if p.str("grant_type").as_deref() != Some("client_credentials") {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials is supported",
        ));
    }
    let given = basic.or_else(|| Some((p.str("client_id")?, p.str("client_secret")?)));
    match given {
        Some((id, secret)) if &id == want_id && &secret == want_secret => {}
        _ => {
            return Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed"))
        }
    }
    reply::ok(json!({
        "access_token": a.issue(),
        "token_type": "Bearer",
        "expires_in": a.token_ttl.as_secs(),
        "scope": p.str("scope").unwrap_or_else(|| "all-apis".to_string()),
    }))
}
