//! Shared by the local cluster's integration tests: start one, call it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use dbrxr::local::{LocalCluster, LocalOptions};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

pub const CLUSTER: &str = "local-cluster";

/// The Unix socket a local cluster's MLflow server listens on.
pub fn mlflow_socket(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("mlflow/sock/server.sock")
}

pub fn start(f: impl FnOnce(&mut LocalOptions)) -> Api {
    let mut o = LocalOptions { token: Some("tok".into()), ..Default::default() };
    f(&mut o);
    let c = LocalCluster::start(o).expect("local cluster starts");
    Api { base: c.url().to_string(), client: reqwest::Client::new(), c }
}

pub struct Api {
    pub c: LocalCluster,
    pub base: String,
    pub client: reqwest::Client,
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: bytes::Bytes,
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.expect("request sent");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let raw = r.bytes().await.expect("body read");
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp { status, headers, body, raw }
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(self.c.token())
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(self.req(reqwest::Method::POST, path).json(&body)).await
    }

    /// Create a context and wait until it is Running.
    pub async fn context(&self) -> String {
        let r = self.post("/api/1.2/contexts/create", json!({"clusterId": CLUSTER, "language": "python"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.context_status(&id).await;
            match s.body["status"].as_str() {
                Some("Running") => return id,
                Some("Pending") => {}
                other => panic!("context went {other:?}: {:?}", s.body),
            }
            assert!(Instant::now() < deadline, "context never became Running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn submit(&self, ctx: &str, code: &str) -> String {
        let r = self
            .post("/api/1.2/commands/execute",
                  json!({"clusterId": CLUSTER, "contextId": ctx, "language": "python", "command": code}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }

    pub async fn status(&self, ctx: &str, cmd: &str) -> Value {
        self.get(&format!("/api/1.2/commands/status?clusterId={CLUSTER}&contextId={ctx}&commandId={cmd}"))
            .await
            .body
    }

    pub async fn context_status(&self, ctx: &str) -> Resp {
        self.get(&format!("/api/1.2/contexts/status?clusterId={CLUSTER}&contextId={ctx}")).await
    }

    pub async fn cancel(&self, ctx: &str, cmd: &str) -> Resp {
        self.post("/api/1.2/commands/cancel", json!({"clusterId": CLUSTER, "contextId": ctx, "commandId": cmd}))
            .await
    }

    /// Poll until the command is terminal.
    pub async fn wait(&self, ctx: &str, cmd: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.status(ctx, cmd).await;
            if matches!(s["status"].as_str(), Some("Finished" | "Cancelled" | "Error")) {
                return s;
            }
            assert!(Instant::now() < deadline, "command never finished: {s}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn run(&self, ctx: &str, code: &str) -> Value {
        let id = self.submit(ctx, code).await;
        self.wait(ctx, &id).await
    }

    /// Wait until the command has reached `status`.
    pub async fn wait_for(&self, ctx: &str, cmd: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.status(ctx, cmd).await["status"] != status {
            assert!(Instant::now() < deadline, "command never reached {status}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A multipart/form-data body (reqwest's multipart feature is not built):
/// text fields, and optionally one file part `(name, bytes)`.
pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "dbrxr-test-boundary-7d93";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    if let Some((name, data)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
