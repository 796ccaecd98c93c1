//! Credentials: turn an [`AuthSpec`] into an `Authorization` header value.
//!
//! OAuth tokens (M2M and the Databricks CLI's) are fetched lazily on first use,
//! cached here and refreshed before they expire, with a margin of
//! `min(40 s, TTL/2)` (real workspaces reject tokens about to expire).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::AuthSpec;
use crate::error::{Error, Result};
use crate::redact::{scrub, Secret};
use crate::retry::{Attempt, Replay, RetryPolicy};

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    /// When to fetch a new one (expiry minus margin).
    refresh_at: Instant,
}

/// The credentials of one connection. `Debug` shows the auth type only.
pub struct Credentials {
    host: String,
    spec: AuthSpec,
    cache: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, {})", self.spec.auth_type(), self.host)
    }
}

#[derive(Deserialize)]
struct Discovery {
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<f64>,
}

#[derive(Deserialize)]
struct CliToken {
    access_token: String,
    #[serde(default)]
    expiry: Option<String>,
    #[serde(default)]
    expires_in: Option<f64>,
}

/// The refresh margin for a token that lives `ttl`.
pub fn refresh_margin(ttl: Duration) -> Duration {
    std::cmp::min(Duration::from_secs(40), ttl / 2)
}

impl Credentials {
    pub fn new(host: &str, spec: AuthSpec) -> Self {
        Credentials { host: host.to_string(), spec, cache: Mutex::new(None) }
    }

    pub fn auth_type(&self) -> &'static str {
        self.spec.auth_type()
    }

    /// The environment variables that let another process (Python's MLflow,
    /// the Databricks SDK or CLI) authenticate as this connection does:
    /// `dbx_mlflow_env()` hands them to the user, who asked for them.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("DATABRICKS_HOST", self.host.clone())];
        match &self.spec {
            AuthSpec::Pat { token } => env.push(("DATABRICKS_TOKEN", token.expose().to_string())),
            AuthSpec::OAuthM2M { client_id, client_secret } => {
                env.push(("DATABRICKS_CLIENT_ID", client_id.clone()));
                env.push(("DATABRICKS_CLIENT_SECRET", client_secret.expose().to_string()));
            }
            AuthSpec::DatabricksCli { profile } => {
                env.push(("DATABRICKS_AUTH_TYPE", "databricks-cli".to_string()));
                if let Some(p) = profile {
                    env.push(("DATABRICKS_CONFIG_PROFILE", p.clone()));
                }
            }
        }
        env
    }

    /// The secrets this connection holds, for scrubbing error texts.
    pub fn secrets(&self) -> Vec<&Secret> {
        match &self.spec {
            AuthSpec::Pat { token } => vec![token],
            AuthSpec::OAuthM2M { client_secret, .. } => vec![client_secret],
            AuthSpec::DatabricksCli { .. } => vec![],
        }
    }

    /// The `Authorization` header value, fetching or refreshing a token if needed.
    pub async fn authorization(&self, client: &reqwest::Client) -> Result<String> {
        if let AuthSpec::Pat { token } = &self.spec {
            return Ok(format!("Bearer {}", token.expose()));
        }
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(format!("Bearer {}", c.token.expose()));
            }
        }
        let fresh = match &self.spec {
            AuthSpec::OAuthM2M { client_id, client_secret } => {
                self.fetch_m2m(client, client_id, client_secret).await?
            }
            AuthSpec::DatabricksCli { profile } => self.fetch_cli(profile.as_deref()).await?,
            AuthSpec::Pat { .. } => return Err(Error::internal("unreachable auth branch")),
        };
        let header = format!("Bearer {}", fresh.token.expose());
        *cache = Some(fresh);
        Ok(header)
    }

    /// Forget a cached token (after the API rejected it).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    /// Whether a rejected request may succeed with a fresh token.
    pub fn can_refresh(&self) -> bool {
        !matches!(self.spec, AuthSpec::Pat { .. })
    }

    async fn fetch_m2m(
        &self,
        client: &reqwest::Client,
        client_id: &str,
        client_secret: &Secret,
    ) -> Result<CachedToken> {
        let discovery_url = format!("{}/oidc/.well-known/oauth-authorization-server", self.host);
        let what = format!("OAuth discovery at {discovery_url}");
        let (status, body) = send_auth(&what, &[client_secret], || client.get(&discovery_url)).await.map_err(|e| {
            e.hint("check the host; OAuth M2M needs a workspace that serves /oidc")
        })?;
        if !(200..300).contains(&status) {
            return Err(Error::auth(format!("OAuth discovery at {discovery_url} answered HTTP {status}"))
                .hint("check that the host is a Databricks workspace URL"));
        }
        let d: Discovery = serde_json::from_str(&body).map_err(|e| {
            Error::auth(format!("OAuth discovery at {discovery_url} returned no token_endpoint ({e})"))
        })?;
        let basic = crate::b64::encode(format!("{client_id}:{}", client_secret.expose()).as_bytes());
        let endpoint = d.token_endpoint;
        let what = format!("OAuth token request to {endpoint}");
        let (status, body) = send_auth(&what, &[client_secret], || {
            client
                .post(&endpoint)
                .header("Authorization", format!("Basic {basic}"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials&scope=all-apis")
        })
        .await?;
        if !(200..300).contains(&status) {
            let detail = oauth_error_text(&body);
            return Err(Error::auth(format!(
                "the workspace refused the OAuth client credentials (HTTP {status}): {}",
                scrub(&detail, &[client_secret])
            ))
            .hint("check DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET: the secret must be an OAuth secret of that service principal")
            .hint("secrets expire; create a new one in the account console if needed"));
        }
        let t: TokenResponse = serde_json::from_str(&body)
            .map_err(|e| Error::auth(format!("OAuth token response from {endpoint} is not valid ({e})")))?;
        let ttl = Duration::from_secs_f64(t.expires_in.unwrap_or(3600.0).max(0.0));
        Ok(CachedToken {
            token: Secret::new(t.access_token),
            refresh_at: Instant::now() + ttl - refresh_margin(ttl),
        })
    }

    async fn fetch_cli(&self, profile: Option<&str>) -> Result<CachedToken> {
        let cli = std::env::var("DATABRICKS_CLI_PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "databricks".to_string());
        let mut cmd = tokio::process::Command::new(&cli);
        cmd.args(["auth", "token"]);
        match profile {
            Some(p) => cmd.args(["--profile", p]),
            None => cmd.args(["--host", &self.host]),
        };
        cmd.stdin(std::process::Stdio::null());
        let out = cmd.output().await.map_err(|e| {
            Error::auth(format!("could not run the Databricks CLI (`{cli}`): {e}"))
                .hint("install it (https://docs.databricks.com/dev-tools/cli/install.html) or set DATABRICKS_CLI_PATH")
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(Error::auth(format!(
                "`databricks auth token` failed: {}",
                stderr.trim().lines().last().unwrap_or("no message")
            ))
            .hint(match profile {
                Some(p) => format!("run `databricks auth login --profile {p}` and try again"),
                None => format!("run `databricks auth login --host {}` and try again", self.host),
            }));
        }
        let t: CliToken = serde_json::from_slice(&out.stdout).map_err(|e| {
            Error::auth(format!("`databricks auth token` printed something that is not a token ({e})"))
        })?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let ttl_s = match (t.expires_in, t.expiry.as_deref().and_then(parse_rfc3339)) {
            (Some(s), _) => s,
            (None, Some(at)) => at - now,
            (None, None) => 300.0,
        };
        let ttl = Duration::from_secs_f64(ttl_s.max(0.0));
        Ok(CachedToken {
            token: Secret::new(t.access_token),
            refresh_at: Instant::now() + ttl - refresh_margin(ttl),
        })
    }
}

/// Send an auth request (discovery, token) through the one retry loop:
/// auth endpoints sit outside the transport (which needs credentials
/// itself), but follow the same rules with [`RetryPolicy::auth`] (the same
/// backoff, fewer attempts) and the call's deadline. Returns the status and
/// body of the answer that was not "try again later".
async fn send_auth<F>(what: &str, secrets: &[&Secret], make: F) -> Result<(u16, String)>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let policy = RetryPolicy::auth();
    let lost = |e: reqwest::Error| {
        let err = Error::auth(scrub(&format!("{what} failed: {e}"), secrets));
        policy.unanswered(err, e.is_connect(), Replay::Safe)
    };
    policy
        .run(what, || async {
            let resp = match make().timeout(policy.attempt_limit(None)).send().await {
                Ok(r) => r,
                Err(e) => return lost(e),
            };
            let status = resp.status().as_u16();
            let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            // The request's timeout covers its body too.
            let body = match resp.text().await {
                Ok(b) => b,
                Err(e) => return lost(e),
            };
            if RetryPolicy::retryable_status(status) {
                return policy.answered(Error::auth(format!("{what} answered HTTP {status}")), status, retry_after.as_deref());
            }
            Attempt::Done((status, body))
        })
        .await
}

fn oauth_error_text(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    let pick = |a: &str| v.get(a).and_then(|x| x.as_str()).map(str::to_string);
    match (pick("error").or_else(|| pick("errorCode")), pick("error_description").or_else(|| pick("errorSummary"))) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) | (None, Some(e)) => e,
        (None, None) => body.chars().take(200).collect(),
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp such as
/// `2026-11-22T10:00:00.123+01:00`; `None` if it does not parse.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, m, dd): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let tz_pos = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (time, tz) = rest.split_at(tz_pos);
    let mut t = time.split(':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let ss: f64 = t.next().unwrap_or("0").parse().ok()?;
    let offset: i64 = match tz.chars().next() {
        None | Some('Z') | Some('z') => 0,
        Some(sign) => {
            let (oh, om) = tz[1..].split_once(':').unwrap_or((&tz[1..], "0"));
            let o = oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60;
            if sign == '-' { -o } else { o }
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((days * 86400 + hh * 3600 + mm * 60 - offset) as f64 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_40s_or_half_the_ttl() {
        assert_eq!(refresh_margin(Duration::from_secs(3600)), Duration::from_secs(40));
        assert_eq!(refresh_margin(Duration::from_secs(2)), Duration::from_secs(1));
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951868800.0));
        assert_eq!(parse_rfc3339("2000-03-01T01:00:00+01:00"), Some(951868800.0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00.5-00:30"), Some(951870600.5));
        assert_eq!(parse_rfc3339("nonsense"), None);
    }

    #[test]
    fn oauth_error_bodies() {
        assert_eq!(oauth_error_text(r#"{"error":"invalid_client","error_description":"bad"}"#), "invalid_client: bad");
        assert_eq!(oauth_error_text(r#"{"errorCode":"x","errorSummary":"y"}"#), "x: y");
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::new("https://h", AuthSpec::Pat { token: Secret::new("dapiSECRETSECRETSECRET") });
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
