//! The HTTP side: routes, the middleware chain (count → authenticate → inject
//! faults → handler) and an accept loop on 127.0.0.1. The loop is our own
//! (hyper directly) so an injected "dropped connection" can close the socket
//! without any response, as a failing gateway does.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use hyper_util::rt::TokioIo;

use super::faults::{DropConnection, Fault};
use super::stats::Direction;
use super::state::Local;
use super::{clusters, commands, control, dbfs, files, local_error, oauth, reply};
use crate::error::Result;

pub fn router(local: Arc<Local>) -> Router {
    let mut r = Router::new();
    for v in ["2.0", "2.1"] {
        r = r
            .route(&format!("/api/{v}/clusters/get"), get(clusters::get))
            .route(&format!("/api/{v}/clusters/list"), get(clusters::list))
            .route(&format!("/api/{v}/clusters/start"), post(clusters::start))
            .route(&format!("/api/{v}/clusters/restart"), post(clusters::restart))
            .route(&format!("/api/{v}/clusters/delete"), post(clusters::delete));
    }
    r.route("/api/1.2/contexts/create", post(commands::context_create))
        .route("/api/1.2/contexts/status", get(commands::context_status))
        .route("/api/1.2/contexts/destroy", post(commands::context_destroy))
        .route("/api/1.2/commands/execute", post(commands::execute))
        .route("/api/1.2/commands/status", get(commands::status))
        .route("/api/1.2/commands/cancel", post(commands::cancel))
        .route("/api/2.0/dbfs/put", post(dbfs::put))
        .route("/api/2.0/dbfs/create", post(dbfs::create))
        .route("/api/2.0/dbfs/add-block", post(dbfs::add_block))
        .route("/api/2.0/dbfs/close", post(dbfs::close))
        .route("/api/2.0/dbfs/read", get(dbfs::read))
        .route("/api/2.0/dbfs/get-status", get(dbfs::get_status))
        .route("/api/2.0/dbfs/list", get(dbfs::list))
        .route("/api/2.0/dbfs/mkdirs", post(dbfs::mkdirs))
        .route("/api/2.0/dbfs/delete", post(dbfs::delete))
        .route("/api/2.0/dbfs/move", post(dbfs::move_))
        .route(
            "/api/2.0/fs/files/{*path}",
            put(files::put_file).get(files::get_file).delete(files::delete_file),
        )
        .route(
            "/api/2.0/fs/directories/{*path}",
            put(files::put_dir).get(files::get_dir).delete(files::delete_dir),
        )
        .route("/.well-known/databricks-config", get(oauth::host_metadata))
        .route("/oidc/.well-known/oauth-authorization-server", get(oauth::discovery))
        .route("/oidc/v1/token", post(oauth::token))
        .route("/_local/stats", get(control::stats))
        .route("/_local/faults", post(control::set_faults))
        .route("/_local/cluster/restart", post(control::restart))
        .route("/_local/cluster/terminate", post(control::terminate))
        .route("/_local/contexts/evict", post(control::evict))
        .merge(super::mlflow::routes())
        .fallback(not_found)
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::from_fn_with_state(local.clone(), inject_faults))
        .layer(middleware::from_fn_with_state(local.clone(), authenticate))
        .layer(middleware::from_fn_with_state(local.clone(), count))
        // `limit_body` bounds every body, per route, while it arrives.
        .layer(DefaultBodyLimit::disable())
        .with_state(local)
}

/// Longest request target (path and query) served.
pub const MAX_URL: usize = 16 * 1024;
/// Command Execution bodies carry the command text (notebook cells take 6 MB).
const COMMAND_BODY_MAX: usize = 8 << 20;
/// Every other JSON or form body is small.
const SMALL_BODY_MAX: usize = 1 << 20;

/// Bound every request: the URL, then the body, read under its route's limit
/// (refused as soon as the declared or received size exceeds it, so nothing
/// large is ever buffered). Files API uploads and multipart `dbfs/put` are
/// streamed to disk by their handlers, which enforce their own limits.
async fn limit_body(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map(|p| p.as_str().len()).unwrap_or(0);
    if target > MAX_URL {
        return reply::api(
            414,
            "INVALID_PARAMETER_VALUE",
            format!("The request URL is {target} bytes long; at most {MAX_URL} are allowed."),
        );
    }
    let path = req.uri().path().to_string();
    let streamed = (path.starts_with("/api/2.0/fs/files/") && req.method() == axum::http::Method::PUT)
        || (path == "/api/2.0/dbfs/put" && dbfs::is_multipart(&req))
        || super::mlflow::streamed(&path);
    if streamed {
        return next.run(req).await;
    }
    let (limit, too_large): (usize, fn(&str, Option<u64>, usize) -> Response) = match path.as_str() {
        "/api/2.0/dbfs/put" | "/api/2.0/dbfs/add-block" => (dbfs::INLINE_BODY_MAX, |_, n, _| dbfs::block_too_large(n)),
        p if p.starts_with("/api/1.2/") => (COMMAND_BODY_MAX, |_, n, max| {
            reply::legacy(format!("The request body{} exceeds the maximum of {max} bytes.", size_note(n)))
        }),
        _ => (SMALL_BODY_MAX, |p, n, max| {
            reply::invalid(format!("The request body{} exceeds the maximum of {max} bytes for {p}.", size_note(n)))
        }),
    };
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(&path, declared, limit);
    }
    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return reply::api(400, "BAD_REQUEST", "The request body was cut off before its end.");
        };
        if buf.len() + chunk.len() > limit {
            return too_large(&path, None, limit);
        }
        buf.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(buf.freeze()))).await
}

fn size_note(declared: Option<u64>) -> String {
    declared.map(|n| format!(" of {n} bytes")).unwrap_or_default()
}

async fn not_found(req: Request) -> Response {
    reply::api(
        404,
        "ENDPOINT_NOT_FOUND",
        format!("No API found for '{} {}'", req.method(), req.uri().path()),
    )
}

/// Count the request and the bytes of both bodies under its route template
/// (`PUT /api/2.0/fs/files`, not the concrete path).
async fn count(State(local): State<Arc<Local>>, req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().trim_end_matches("/{*path}").to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    let route = local.stats.route(&format!("{} {template}", req.method()));
    let (parts, body) = req.into_parts();
    let body = Body::new(local.stats.count(route.clone(), Direction::In, body));
    let resp = next.run(Request::from_parts(parts, body)).await;
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, Body::new(local.stats.count(route, Direction::Out, body)))
}

/// Bearer token on `/api/` and `/_local/`: the cluster's token or an OAuth
/// token it issued. 401/403 exactly as a workspace answers.
async fn authenticate(State(local): State<Arc<Local>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path.starts_with("/api/") || path.starts_with("/_local/")) {
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
        Some(t) if constant_time_eq(t.as_bytes(), local.token.as_bytes()) || local.oauth.valid(&t) => {
            next.run(req).await
        }
        Some(_) => reply::invalid_token(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn inject_faults(State(local): State<Arc<Local>>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let (fault, latency_ms) = local.faults.draw();
    if latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency_ms)).await;
    }
    if fault == Fault::None {
        return next.run(req).await;
    }
    local.stats.faults_injected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    local.faults.response(&fault)
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
    let _ = local.url.set(url.clone());
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

/// The server's open sockets (listener and connections), so that stopping
/// closes the port and every keep-alive connection at once, not whenever the
/// tasks that own them next run. A socket leaves the set under the lock, just
/// before it is closed, so a number is never shut down after reuse.
#[derive(Default)]
pub struct Sockets(std::sync::Mutex<std::collections::HashSet<RawFd>>);

impl Sockets {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<RawFd>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn open(&self, fd: RawFd) {
        self.lock().insert(fd);
    }
    /// Forget `fd` and drop `owner` (which closes it) under the lock.
    fn close<T>(&self, fd: RawFd, owner: T) {
        let mut g = self.lock();
        g.remove(&fd);
        drop(owner);
        drop(g);
    }
    /// Shut every socket down: new connections are refused, open ones end.
    pub fn shutdown_all(&self) {
        for fd in self.lock().iter() {
            // SAFETY: the fd is open (it leaves the set before it is closed).
            unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
        }
    }
}
