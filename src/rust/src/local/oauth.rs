//! OAuth M2M as a workspace serves it: discovery at
//! `/oidc/.well-known/oauth-authorization-server` (after host metadata at
//! `/.well-known/databricks-config`) and the client-credentials
//! grant at `POST /oidc/v1/token` (client id and secret in HTTP Basic auth or
//! in the form). Issued tokens expire after `token_ttl_s`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::params::Params;
use super::reply::{self, Reply};
use super::state::Local;

#[derive(Default)]
pub struct Tokens {
    map: Mutex<HashMap<String, Instant>>,
}

impl Tokens {
    /// Whether `token` was issued here and has not expired.
    pub fn valid(&self, token: &str) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, exp| *exp > now);
        map.contains_key(token)
    }

    fn issue(&self, ttl: Duration) -> String {
        let token = format!("dbrxr-oauth-{}", super::random_hex(24));
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(token.clone(), Instant::now() + ttl);
        token
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

pub async fn discovery(State(local): State<Arc<Local>>) -> Reply {
    let base = local.url();
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
pub async fn host_metadata(State(local): State<Arc<Local>>) -> Reply {
    reply::ok(json!({"oidc_endpoint": format!("{}/oidc", local.url()), "workspace_id": WORKSPACE_ID}))
}

/// The workspace id the local cluster reports.
pub const WORKSPACE_ID: &str = "1000000000000001";

/// `Authorization: Basic base64(id:secret)`, if present and well formed.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let h = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = crate::b64::decode(rest).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

pub async fn token(State(local): State<Arc<Local>>, req: Request) -> Reply {
    let basic = basic_credentials(&req);
    let p = Params::parse(req)
        .await
        .map_err(|m| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &m))?;
    let (Some(want_id), Some(want_secret)) = (&local.opts.client_id, &local.opts.client_secret) else {
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
    let ttl = local.opts.token_ttl_s;
    let access = local.oauth.issue(Duration::from_secs(ttl));
    reply::ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": p.str("scope").unwrap_or_else(|| "all-apis".to_string()),
    }))
}
