//! Every wait is bounded: servers that answer with headers and then stall
//! mid-body (a real TCP server on loopback that holds the socket open).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbrxr::auth::Credentials;
use dbrxr::config::AuthSpec;
use dbrxr::http::{Replay, Request, RetryPolicy, Transport};
use dbrxr::redact::Secret;
use dbrxr::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server that answers every request with `200`, a `Content-Length` of
/// 1000 and the first 20 bytes of the body, then sends nothing more.
/// Returns its URL and the number of requests it saw.
async fn stalling_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(br#"{"cluster_id":"abc","#).await;
                let _ = sock.flush().await;
                tokio::time::sleep(Duration::from_secs(600)).await;
                drop(sock);
            });
        }
    });
    (url, seen)
}

fn transport(host: &str) -> Transport {
    let creds = Arc::new(Credentials::new(host, AuthSpec::Pat { token: Secret::new("dapi-stall-secret") }));
    Transport::new(host, creds, None).unwrap()
}

#[tokio::test]
async fn a_body_that_stalls_ends_the_attempt_and_safe_requests_are_retried() {
    let (host, seen) = stalling_server().await;
    let t = transport(&host)
        .with_idle_timeout(Duration::from_millis(300))
        .with_policy(RetryPolicy { max_attempts: 3, base: Duration::from_millis(1), ..Default::default() });
    let started = Instant::now();
    let e = t.send(Request::get("/api/2.1/clusters/get")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert_eq!(e.attempts, Some(3));
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert!(e.message.contains("GET /api/2.1/clusters/get"), "{}", e.message);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_stalled_answer_to_execute_is_a_timeout_and_never_resent() {
    let (host, seen) = stalling_server().await;
    let t = transport(&host).with_idle_timeout(Duration::from_millis(300));
    let e = t.send(Request::post("/api/1.2/commands/execute").replay(Replay::Never)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert_eq!(e.attempts, Some(1));
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert!(e.hints.iter().any(|h| h.contains("may have run")), "{:?}", e.hints);
}

#[tokio::test]
async fn with_default_bounds_the_request_timeout_covers_the_body() {
    // No idle bound short enough and no deadline: the request's own time ends it.
    let (host, _) = stalling_server().await;
    let t = transport(&host).with_policy(RetryPolicy { max_attempts: 2, base: Duration::from_millis(1), ..Default::default() });
    let started = Instant::now();
    let e = t.send(Request::get("/x").timeout(Duration::from_millis(400))).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert_eq!(e.attempts, Some(2));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_call_deadline_ends_a_stall_whatever_the_request_bounds() {
    let (host, _) = stalling_server().await;
    let t = transport(&host); // default bounds: 60 s a request, 30 s of silence
    let started = Instant::now();
    let e = dbrxr::deadline::scope(Some(Duration::from_millis(700)), t.send(Request::get("/api/2.1/clusters/get")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("within its timeout of 0.7 s"), "{}", e.message);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_streamed_download_that_stalls_is_a_timeout() {
    let (host, _) = stalling_server().await;
    let t = transport(&host).with_idle_timeout(Duration::from_millis(300));
    let mut out = Vec::new();
    let started = Instant::now();
    let e = dbrxr::api::files::download_to(&t, "/Volumes/c/s/v/x", &mut out).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert_eq!(out.len(), 20);
    assert!(started.elapsed() < Duration::from_secs(3));
}
