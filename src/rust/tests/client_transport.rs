//! The transport against tiny loopback servers: what is retried, what is
//! never resent, how errors and auth failures come back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use dbrxr::auth::Credentials;
use dbrxr::config::AuthSpec;
use dbrxr::http::{Replay, Request, RetryPolicy, Transport};
use dbrxr::redact::Secret;
use dbrxr::ErrorKind;

const TOKEN: &str = "dapi-loopback-secret-0123456789";

#[derive(Default)]
struct Counts {
    flaky: AtomicUsize,
    slow: AtomicUsize,
    token: AtomicUsize,
    api: AtomicUsize,
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn app(c: Arc<Counts>) -> Router {
    Router::new()
        // 429 twice (Retry-After 0), 503 once, then OK.
        .route(
            "/flaky",
            get(|State(c): State<Arc<Counts>>| async move {
                match c.flaky.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => (StatusCode::TOO_MANY_REQUESTS, [("Retry-After", "0")], r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#).into_response(),
                    2 => (StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE: try later").into_response(),
                    _ => r#"{"ok":true}"#.into_response(),
                }
            }),
        )
        // Answers only after the client gave up: an ambiguous failure.
        .route(
            "/slow",
            post(|State(c): State<Arc<Counts>>| async move {
                c.slow.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(2)).await;
                "{}"
            }),
        )
        .route(
            "/transient",
            get(|State(c): State<Arc<Counts>>| async move {
                if c.flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                    (StatusCode::BAD_REQUEST, r#"{"error_code":"INVALID_STATE","message":"ClusterNotReadyException: wait"}"#).into_response()
                } else {
                    "{}".into_response()
                }
            }),
        )
        .route(
            "/forbidden",
            get(|| async {
                (StatusCode::FORBIDDEN, [("X-Databricks-Reason-Phrase", "Invalid access token.")],
                 format!(r#"{{"error_code":403,"message":"Invalid access token {TOKEN}. [ReqId: r-42]"}}"#))
            }),
        )
        .route(
            "/html",
            get(|| async { (StatusCode::BAD_GATEWAY, "<html><title>Error 502</title><pre>gateway broke</pre></html>") }),
        )
        .route(
            "/oidc/.well-known/oauth-authorization-server",
            get(|headers: HeaderMap| async move {
                let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
                format!(r#"{{"token_endpoint":"http://{host}/oidc/v1/token"}}"#)
            }),
        )
        .route(
            "/oidc/v1/token",
            post(|State(c): State<Arc<Counts>>| async move {
                let n = c.token.fetch_add(1, Ordering::SeqCst) + 1;
                format!(r#"{{"access_token":"tok{n}","token_type":"Bearer","expires_in":3600}}"#)
            }),
        )
        // Accepts only the second token: the first is "revoked".
        .route(
            "/api/needs-fresh-token",
            get(|State(c): State<Arc<Counts>>, headers: HeaderMap| async move {
                c.api.fetch_add(1, Ordering::SeqCst);
                if headers.get("authorization").and_then(|h| h.to_str().ok()) == Some("Bearer tok2") {
                    (StatusCode::OK, "{}".to_string())
                } else {
                    (StatusCode::FORBIDDEN, r#"{"error_code":403,"message":"Invalid access token."}"#.to_string())
                }
            }),
        )
        .with_state(c)
}

fn pat(host: &str) -> Transport {
    let creds = Arc::new(Credentials::new(host, AuthSpec::Pat { token: Secret::new(TOKEN) }));
    Transport::new(host, creds, Some("environment variable DATABRICKS_TOKEN".into()))
        .unwrap()
        .with_policy(RetryPolicy { base: Duration::from_millis(10), ..Default::default() })
}

#[tokio::test]
async fn retries_429_and_503_then_succeeds() {
    let c = Arc::new(Counts::default());
    let host = serve(app(c.clone())).await;
    let r = pat(&host).send(Request::get("/flaky")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(c.flaky.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn gives_up_within_the_budget_with_the_attempt_count() {
    let c = Arc::new(Counts::default());
    let host = serve(app(c.clone())).await;
    let t = pat(&host).with_policy(RetryPolicy { max_attempts: 2, base: Duration::from_millis(1), ..Default::default() });
    let e = t.send(Request::get("/flaky")).await.unwrap_err();
    assert_eq!(e.status, Some(429));
    assert_eq!(e.attempts, Some(2));
    assert_eq!(e.error_code.as_deref(), Some("REQUEST_LIMIT_EXCEEDED"));
}

#[tokio::test]
async fn transient_messages_are_retried_whatever_the_status() {
    let c = Arc::new(Counts::default());
    let host = serve(app(c.clone())).await;
    pat(&host).send(Request::get("/transient")).await.unwrap();
    assert_eq!(c.flaky.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_ambiguous_failure_is_never_resent_for_execute() {
    let c = Arc::new(Counts::default());
    let host = serve(app(c.clone())).await;
    let t = pat(&host);
    let req = Request::post("/slow").timeout(Duration::from_millis(200)).replay(Replay::Never);
    let e = t.send(req).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network);
    assert_eq!(e.attempts, Some(1));
    assert!(e.hints.iter().any(|h| h.contains("may have run")));
    assert_eq!(c.slow.load(Ordering::SeqCst), 1);

    // The same failure on a safe request is retried (within the attempt
    // budget: `max_network_attempts` is for connections that cannot be made).
    let t = pat(&host).with_policy(RetryPolicy { max_attempts: 2, base: Duration::from_millis(1), ..Default::default() });
    let e = t.send(Request::post("/slow").timeout(Duration::from_millis(200))).await.unwrap_err();
    assert_eq!(e.attempts, Some(2));
    assert_eq!(c.slow.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn refused_connections_are_retried_briefly_even_for_execute() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let started = std::time::Instant::now();
    let e = pat(&host).send(Request::post("/x").replay(Replay::Never)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network);
    assert_eq!(e.attempts, Some(5));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn rejected_pat_is_an_auth_error_with_a_fix_and_no_secret() {
    let c = Arc::new(Counts::default());
    let host = serve(app(c)).await;
    let e = pat(&host).send(Request::get("/forbidden")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.status, Some(403));
    assert_eq!(e.attempts, Some(1));
    assert_eq!(e.request_id.as_deref(), Some("r-42"));
    let all = format!("{e} {:?}", e);
    assert!(!all.contains(TOKEN), "secret leaked: {all}");
    assert!(e.hints.iter().any(|h| h.contains("DATABRICKS_TOKEN")));
}

#[tokio::test]
async fn html_errors_are_parsed() {
    let c = Arc::new(Counts::default());
    let host = serve(app(c)).await;
    let e = pat(&host).send(Request::get("/html")).await.unwrap_err();
    assert_eq!(e.status, Some(502));
    assert!(e.message.ends_with("gateway broke"), "{}", e.message);
    assert_eq!(e.error_code.as_deref(), Some("BAD_GATEWAY"));
}

#[tokio::test]
async fn oauth_token_is_refreshed_once_after_a_rejection() {
    let c = Arc::new(Counts::default());
    let host = serve(app(c.clone())).await;
    let spec = AuthSpec::OAuthM2M { client_id: "id".into(), client_secret: Secret::new("oauth-secret-abcdefgh") };
    let t = Transport::new(&host, Arc::new(Credentials::new(&host, spec)), None).unwrap();
    t.send(Request::get("/api/needs-fresh-token")).await.unwrap();
    assert_eq!(c.token.load(Ordering::SeqCst), 2);
    assert_eq!(c.api.load(Ordering::SeqCst), 2);
}
