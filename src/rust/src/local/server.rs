//! The HTTP side: the API families' routers merged into one, the middleware
//! chain (bound the URL → count → authenticate → inject faults → family
//! router, whose body limit is its own layer) and an accept loop on
//! 127.0.0.1. The loop is our own (hyper directly) so an injected "dropped
//! connection" can close the socket without any response, as a failing
//! gateway does.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use hyper_util::rt::TokioIo;

use super::access::Access;
use super::faults::{DropConnection, Fault, Faults};
use super::state::{Local, Shared};
use super::stats::{Direction, Stats};
use super::util::local_error;
use super::{clusters, commands, control, dbfs, files, identity, mlflow, mlflow_run_artifacts, oauth, reply, serving, uc_registry};
use crate::error::Result;

/// Every API family of the local cluster: adding one is one line here (see
/// README.md, "Adding an API family").
fn families() -> Router<Shared> {
    Router::new()
        .merge(clusters::router())
        .merge(commands::router())
        .merge(dbfs::router())
        .merge(files::router())
        .merge(oauth::router())
        .merge(control::router())
        .merge(identity::router())
        .merge(mlflow::router())
        .merge(mlflow_run_artifacts::router())
        .merge(uc_registry::router())
        .merge(serving::router())
}

pub fn router(local: Arc<Local>) -> Router {
    families()
        // Jobs keep state of their own (runs, schedules) and a scheduler task.
        .merge(super::jobs::router(local.clone()))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state((local.faults.clone(), local.stats.clone()), inject_faults))
        .layer(middleware::from_fn_with_state(local.access.clone(), authenticate))
        .layer(middleware::from_fn_with_state(local.stats.clone(), count))
        .layer(middleware::from_fn(limit_url))
        // Each family bounds its bodies with its own `BodyLimit` layer,
        // enforced by our extractors; axum's own default limit stays out of it.
        .layer(DefaultBodyLimit::disable())
        .with_state(Shared(local))
}

/// Longest request target (path and query) served.
pub const MAX_URL: usize = 16 * 1024;

async fn limit_url(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map(|p| p.as_str().len()).unwrap_or(0);
    if target > MAX_URL {
        return reply::api(
            414,
            "INVALID_PARAMETER_VALUE",
            format!("The request URL is {target} bytes long; at most {MAX_URL} are allowed."),
        );
    }
    next.run(req).await
}

async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    reply::api(404, "ENDPOINT_NOT_FOUND", format!("No API found for '{method} {}'", uri.path()))
}

/// Count the request and the bytes of both bodies under its route template
/// (`PUT /api/2.0/fs/files`, not the concrete path).
async fn count(State(stats): State<Arc<Stats>>, req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().trim_end_matches("/{*path}").to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    let route = stats.route(&format!("{} {template}", req.method()));
    let (parts, body) = req.into_parts();
    let body = Body::new(stats.count(route.clone(), Direction::In, body));
    let resp = next.run(Request::from_parts(parts, body)).await;
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, Body::new(stats.count(route, Direction::Out, body)))
}

/// What a workspace serves without a token: OAuth discovery and the token
/// endpoint (which checks the client's id and secret itself).
const PUBLIC_PATHS: &[&str] =
    &["/.well-known/databricks-config", "/oidc/.well-known/oauth-authorization-server", "/oidc/v1/token"];

/// A presigned URL (uc_artifacts.rs) is its own credential, as a cloud
/// store's is: a random nonce bound to one file, one direction and a deadline.
const PRESIGNED_PREFIX: &str = "/presigned/";

/// Bearer token on every route (`/api/`, `/_local/`, MLflow's `/ajax-api/`,
/// and any path not served) but [`PUBLIC_PATHS`], presigned URLs and the S3
/// store (whose credential is its session token, uc_s3.rs): the
/// cluster's token or an OAuth token it issued. 401/403 exactly as a
/// workspace answers.
async fn authenticate(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if PUBLIC_PATHS.contains(&path) || path.starts_with(PRESIGNED_PREFIX) || path.starts_with(super::uc_s3::PREFIX) {
        return next.run(req).await;
    }
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    match bearer {
        None => reply::unauthenticated(),
        Some(t) if access.allows(&t) => next.run(req).await,
        Some(_) => reply::invalid_token(),
    }
}

async fn inject_faults(
    State((faults, stats)): State<(Arc<Faults>, Arc<Stats>)>,
    req: Request,
    next: Next,
) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let (fault, latency_ms) = faults.draw();
    if latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency_ms)).await;
    }
    if fault == Fault::None {
        return next.run(req).await;
    }
    stats.faults_injected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    faults.response(&fault)
}

#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}
impl std::error::Error for Dropped {}

/// Bind 127.0.0.1:`port` and serve on the shared runtime until shutdown.
/// Returns the base URL.
pub fn serve(local: Arc<Local>) -> Result<String> {
    let rt = crate::runtime::runtime()?;
    let port = local.opts.port;
    let std_listener = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        local_error(format!("could not listen on 127.0.0.1:{port}: {e}"))
            .hint("choose another port, or port = 0 for any free one")
    })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| local_error(format!("could not configure the listener: {e}")))?;
    let addr = std_listener
        .local_addr()
        .map_err(|e| local_error(format!("could not read the listening address: {e}")))?;
    let _guard = rt.enter();
    let listener = tokio::net::TcpListener::from_std(std_listener)
        .map_err(|e| local_error(format!("could not register the listener: {e}")))?;
    let url = format!("http://127.0.0.1:{}", addr.port());
    let _ = local.access.url.set(url.clone());
    let app = router(local.clone());
    let shutdown = local.shutdown.clone();
    let sockets = local.sockets.clone();
    sockets.open(listener.as_raw_fd());
    rt.spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else {
                // Out of file descriptors or similar: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            let shutdown = shutdown.clone();
            let sockets = sockets.clone();
            let fd = stream.as_raw_fd();
            sockets.open(fd);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut app = app.clone();
                    async move {
                        let resp = tower_service::Service::call(&mut app, req.map(Body::new))
                            .await
                            .unwrap_or_else(|e| match e {});
                        if resp.extensions().get::<DropConnection>().is_some() {
                            return Err(Dropped);
                        }
                        Ok(resp)
                    }
                });
                let mut conn = Box::pin(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc),
                );
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = shutdown.cancelled() => {}
                }
                sockets.close(fd, conn);
            });
        }
        sockets.close(listener.as_raw_fd(), listener);
    });
    Ok(url)
}

