//! The local cluster over HTTP: cluster state machine, auth (PAT, OAuth M2M),
//! error bodies, request body formats, fault injection, control routes, stats.

mod local_support;

use std::time::{Duration, Instant};

use base64::Engine;
use local_support::{start, CLUSTER};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_state_machine_terminated_pending_running_restarting() {
    let api = start(|o| {
        o.cluster_state = "TERMINATED".into();
        o.start_delay_ms = 300;
    });
    for v in ["2.0", "2.1"] {
        let r = api.get(&format!("/api/{v}/clusters/get?cluster_id={CLUSTER}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["state"], "TERMINATED");
        assert_eq!(r.body["termination_reason"]["code"], "USER_REQUEST");
    }
    // 1.2 refuses to work on a cluster that is not running.
    let r = api.post("/api/1.2/contexts/create", json!({"clusterId": CLUSTER, "language": "python"})).await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"].as_str().unwrap().contains("is not running"), "{:?}", r.body);

    let r = api.post("/api/2.1/clusters/start", json!({"cluster_id": CLUSTER})).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    let r = api.get(&format!("/api/2.1/clusters/get?cluster_id={CLUSTER}")).await;
    assert_eq!(r.body["state"], "PENDING");
    let r = api.post("/api/2.0/clusters/start", json!({"cluster_id": CLUSTER})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error_code"], "INVALID_STATE");
    assert_eq!(r.body["message"], format!("Cluster {CLUSTER} is in unexpected state Pending."));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = api.get("/api/2.1/clusters/list").await;
    assert_eq!(r.body["clusters"][0]["state"], "RUNNING");
    let r = api.post("/api/2.1/clusters/start", json!({"cluster_id": CLUSTER})).await;
    assert_eq!(r.body["message"], format!("Cluster {CLUSTER} is in unexpected state Running."));

    // Restart loses every context.
    let ctx = api.context().await;
    let r = api.post("/api/2.1/clusters/restart", json!({"cluster_id": CLUSTER})).await;
    assert_eq!(r.status, 200);
    let r = api.get(&format!("/api/2.1/clusters/get?cluster_id={CLUSTER}")).await;
    assert_eq!(r.body["state"], "RESTARTING");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = api.context_status(&ctx).await;
    assert_eq!(r.status, 400);
    let e = r.body["error"].as_str().unwrap();
    assert!(e.contains("context") && e.contains("does not exist"), "{e}");

    // delete = terminate.
    let r = api.post("/api/2.1/clusters/delete", json!({"cluster_id": CLUSTER})).await;
    assert_eq!(r.status, 200);
    let r = api.get(&format!("/api/2.1/clusters/get?cluster_id={CLUSTER}")).await;
    assert_eq!(r.body["state"], "TERMINATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_have_the_real_shapes() {
    let api = start(|_| {});
    let r = api.get("/api/2.1/clusters/get?cluster_id=123__non_existing__").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Cluster 123__non_existing__ does not exist"})
    );
    // 1.2: legacy body, no error_code.
    let r = api.post("/api/1.2/commands/execute", json!({"clusterId": "__non_existing__"})).await;
    assert_eq!(r.status, 400);
    assert!(r.body.get("error_code").is_none());
    let r = api.post("/api/1.2/commands/execute", json!({"clusterId": CLUSTER})).await;
    assert_eq!(r.body, json!({"error": "requirement failed: missing contextId"}));
    let r = api.post("/api/1.2/contexts/create", json!({"clusterId": CLUSTER, "language": "scala"})).await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"].as_str().unwrap().contains("no Scala REPL"), "{}", r.body);
    let r = api.post("/api/1.2/contexts/create", json!({"clusterId": CLUSTER, "language": "cobol"})).await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"].as_str().unwrap().contains("python, sql, r and scala"), "{}", r.body);
    let r = api.get(&format!("/api/1.2/commands/status?clusterId={CLUSTER}&contextId=42&commandId=x")).await;
    assert!(r.body["error"].as_str().unwrap().contains("context does not exist"));
    let r = api.send(api.req(Method::POST, "/api/1.2/contexts/create").body("{not json")).await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"].as_str().unwrap().contains("malformed JSON"));
    // Unknown endpoints, unknown fields.
    let r = api.get("/api/2.0/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error_code"], "ENDPOINT_NOT_FOUND");
    let r = api
        .post("/api/2.1/clusters/start", json!({"cluster_id": CLUSTER, "whatever": [1, 2], "x": {"y": 1}}))
        .await;
    assert_eq!(r.body["error_code"], "INVALID_STATE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_are_exactly_what_workspaces_send() {
    let api = start(|_| {});
    let url = api.url("/api/2.1/clusters/list");
    let r = api.send(api.client.get(&url)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error_code"], 401);
    let m = r.body["message"].as_str().unwrap();
    assert!(m.starts_with("Credential was not sent or was of an unsupported type for this API. [ReqId: "), "{m}");
    let r = api.send(api.client.get(&url).basic_auth("u", Some("p"))).await;
    assert_eq!(r.status, 401);
    let r = api.send(api.client.get(&url).bearer_auth("wrong")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body, json!({"error_code": 403, "message": "Invalid access token."}));
    assert_eq!(r.headers["x-databricks-reason-phrase"], "Invalid access token.");
    // Control routes need the token too; discovery does not.
    let r = api.send(api.client.get(api.url("/_local/stats"))).await;
    assert_eq!(r.status, 401);
    let r = api.send(api.client.get(api.url("/oidc/.well-known/oauth-authorization-server"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["token_endpoint"], api.url("/oidc/v1/token"));
    let r = api.send(api.client.get(api.url("/.well-known/databricks-config"))).await;
    assert_eq!(r.body["oidc_endpoint"], api.url("/oidc"));
    let r = api.send(api.client.get(&url).bearer_auth("tok")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_m2m_issues_tokens_that_expire() {
    let api = start(|o| {
        o.client_id = Some("sp".into());
        o.client_secret = Some("secret".into());
        o.token_ttl_s = 1;
    });
    let token_url = api.url("/oidc/v1/token");
    let form = [("grant_type", "client_credentials"), ("scope", "all-apis")];
    let r = api.send(api.client.post(&token_url).basic_auth("sp", Some("wrong")).form(&form)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "invalid_client");
    let r = api.send(api.client.post(&token_url).basic_auth("sp", Some("secret")).form(&[("grant_type", "password")])).await;
    assert_eq!(r.body["error"], "unsupported_grant_type");
    let r = api.send(api.client.post(&token_url).basic_auth("sp", Some("secret")).form(&form)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 1);
    assert_eq!(r.body["scope"], "all-apis");
    let token = r.body["access_token"].as_str().unwrap().to_string();
    // Credentials in the form body work too.
    let r = api
        .send(api.client.post(&token_url).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sp"),
            ("client_secret", "secret"),
        ]))
        .await;
    assert_eq!(r.status, 200);
    let list = api.url("/api/2.1/clusters/list");
    assert_eq!(api.send(api.client.get(&list).bearer_auth(&token)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.send(api.client.get(&list).bearer_auth(&token)).await.status, 403);

    // Without client credentials configured, the endpoint refuses.
    let plain = start(|_| {});
    let r = plain
        .send(plain.client.post(plain.url("/oidc/v1/token")).basic_auth("sp", Some("secret")).form(&form))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_accepts_form_and_multipart_bodies() {
    let api = start(|_| {});
    let ctx = api.context().await;
    let r = api
        .send(api.req(Method::POST, "/api/1.2/commands/execute").form(&[
            ("clusterId", CLUSTER),
            ("contextId", ctx.as_str()),
            ("language", "python"),
            ("command", "print('form')"),
        ]))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(api.wait(&ctx, &id).await["results"]["data"], "form");
    let parts = [
        ("clusterId", CLUSTER),
        ("contextId", ctx.as_str()),
        ("language", "python"),
        ("command", "print('multipart')"),
        ("options", "{}"),
    ];
    let (ctype, body) = local_support::multipart(&parts, None);
    let r = api
        .send(api.req(Method::POST, "/api/1.2/commands/execute").header("content-type", ctype).body(body))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(api.wait(&ctx, &id).await["results"]["data"], "multipart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_429_503_latency_and_dropped_connections() {
    let api = start(|_| {});
    let set = |v| api.post("/_local/faults", v);
    let r = set(json!({"status_429_rate": 1.0, "retry_after_s": 2})).await;
    assert_eq!(r.status, 200);
    let r = api.get("/api/2.1/clusters/list").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "2");
    assert_eq!(r.body["error_code"], "REQUEST_LIMIT_EXCEEDED");
    // Control routes are never faulted.
    assert_eq!(api.get("/_local/stats").await.status, 200);

    set(json!({"status_503_rate": 1.0})).await;
    let r = api.get("/api/2.1/clusters/list").await;
    assert_eq!(r.status, 503);
    assert!(r.headers.get("retry-after").is_none());
    assert_eq!(r.body["error_code"], "TEMPORARILY_UNAVAILABLE");

    set(json!({"drop_rate": 1.0})).await;
    let e = api.req(Method::GET, "/api/2.1/clusters/list").send().await;
    assert!(e.is_err(), "a dropped connection must fail the request");

    set(json!({"latency_ms": 200})).await;
    let t = Instant::now();
    assert_eq!(api.get("/api/2.1/clusters/list").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(200));

    // Seeded rates: about 30% of 200 requests, the same every run.
    let run = || async {
        set(json!({"status_429_rate": 0.3, "seed": 9})).await;
        let mut hits = Vec::new();
        for _ in 0..200 {
            hits.push(api.get("/api/2.1/clusters/list").await.status == 429);
        }
        hits
    };
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b);
    let n = a.iter().filter(|h| **h).count();
    assert!((35..85).contains(&n), "{n} of 200 were 429");

    let r = set(json!({"drop_rate": 3})).await;
    assert_eq!(r.status, 400);
    set(json!({})).await;
    let stats = api.get("/_local/stats").await.body;
    assert_eq!(stats["faults_injected"], 3 + 2 * n as u64);
    assert_eq!(stats["commands"]["executed"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_routes_by_template_and_bytes_both_ways() {
    let api = start(|_| {});
    let payload = vec![7u8; 100_000];
    for name in ["a.bin", "b.bin"] {
        let r = api
            .send(api.req(Method::PUT, &format!("/api/2.0/fs/files/Volumes/c/s/v/{name}")).body(payload.clone()))
            .await;
        assert_eq!(r.status, 204);
    }
    let r = api.get("/api/2.0/fs/files/Volumes/c/s/v/a.bin").await;
    assert_eq!(r.raw.len(), payload.len());
    let ctx = api.context().await;
    api.run(&ctx, "print(1)").await;
    let ok = api.run(&ctx, "1/0").await;
    assert_eq!(ok["status"], "Finished");
    let s = api.get("/_local/stats").await.body;
    let put = &s["routes"]["PUT /api/2.0/fs/files"];
    assert_eq!(put["count"], 2);
    assert_eq!(put["bytes_in"], 200_000);
    let get = &s["routes"]["GET /api/2.0/fs/files"];
    assert_eq!(get["bytes_out"], 100_000);
    assert!(s["bytes_in"].as_u64().unwrap() >= 200_000);
    assert!(s["bytes_out"].as_u64().unwrap() >= 100_000);
    assert_eq!(s["routes"]["POST /api/1.2/commands/execute"]["count"], 2);
    assert_eq!(s["contexts"], json!({"created": 1, "destroyed": 0, "alive": 1}));
    assert_eq!(s["commands"], json!({"executed": 2, "Finished": 2, "Cancelled": 0, "Error": 0}));
    // The in-process view is the same counters.
    assert_eq!(api.c.stats()["commands"], s["commands"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_routes_restart_terminate_and_evict() {
    let api = start(|o| o.start_delay_ms = 100);
    let a = api.context().await;
    let b = api.context().await;
    let busy = api.submit(&b, "import time\ntime.sleep(30)").await;
    api.wait_for(&b, &busy, "Running").await;
    // Only idle contexts are evicted.
    let r = api.post("/_local/contexts/evict", json!({})).await;
    assert_eq!(r.body["evicted"], json!([a]));
    let r = api.post("/_local/contexts/evict", json!({"context_id": "nope"})).await;
    assert_eq!(r.status, 404);
    let r = api.post("/_local/cluster/restart", json!({})).await;
    assert_eq!(r.body["state"], "RESTARTING");
    let s = api.get("/_local/stats").await.body;
    assert_eq!(s["contexts"], json!({"created": 2, "destroyed": 2, "alive": 0}));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let r = api.post("/_local/cluster/terminate", json!({})).await;
    assert_eq!(r.body["state"], "TERMINATED");
    let r = api.get(&format!("/api/2.1/clusters/get?cluster_id={CLUSTER}")).await;
    assert_eq!(r.body["state"], "TERMINATED");
    let r = api.post("/_local/cluster/restart", json!({})).await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_the_port_and_is_idempotent() {
    let api = start(|_| {});
    let ctx = api.context().await;
    let pid_line = api.run(&ctx, "import os; print(os.getpid())").await;
    let pid: i32 = pid_line["results"]["data"].as_str().unwrap().parse().unwrap();
    api.c.stop();
    api.c.stop();
    assert!(api.req(Method::GET, "/api/2.1/clusters/list").send().await.is_err());
    // The context's process is gone too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "worker {pid} survived stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn start_validates_options_and_binds_loopback_only() {
    use dbrxr::local::{LocalCluster, LocalOptions};
    let bad = |f: fn(&mut LocalOptions)| {
        let mut o = LocalOptions::default();
        f(&mut o);
        LocalCluster::start(o).err().expect("refused")
    };
    assert_eq!(bad(|o| o.cluster_state = "PAUSED".into()).kind, dbrxr::ErrorKind::Input);
    assert_eq!(bad(|o| o.client_id = Some("x".into())).kind, dbrxr::ErrorKind::Input);
    assert_eq!(bad(|o| o.max_contexts = 0).kind, dbrxr::ErrorKind::Input);
    assert_eq!(bad(|o| o.python = Some("/nonexistent/py".into())).kind, dbrxr::ErrorKind::LocalCluster);
    let c = LocalCluster::start(LocalOptions::default()).unwrap();
    assert!(c.url().starts_with("http://127.0.0.1:"));
    assert!(c.token().starts_with("dapi") && c.token().len() > 20);
    let dir = c.state_dir().to_path_buf();
    assert!(dir.join("fs").is_dir());
    // A busy port is a clear error.
    let port: u16 = c.url().rsplit(':').next().unwrap().parse().unwrap();
    let e = LocalCluster::start(LocalOptions { port, ..Default::default() }).err().unwrap();
    assert!(e.message.contains("could not listen"), "{}", e.message);
    drop(c);
    assert!(!dir.exists(), "a temporary state dir is removed on stop");
    let _ = base64::engine::general_purpose::STANDARD.encode(b"");
}

#[test]
fn state_dirs_left_by_dead_processes_are_cleaned_up() {
    use dbrxr::local::{LocalCluster, LocalOptions};
    // A pid that cannot exist (above pid_max) stands for a killed owner.
    let stale = std::env::temp_dir().join("dbrxr-local-2147483600-deadbeef0000");
    std::fs::create_dir_all(stale.join("fs")).unwrap();
    std::fs::write(stale.join("worker.py"), "").unwrap();
    let mine = std::env::temp_dir().join(format!("dbrxr-local-{}-0000live0000", std::process::id()));
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("worker.py"), "").unwrap();
    let c = LocalCluster::start(LocalOptions::default()).unwrap();
    assert!(!stale.exists(), "the dead owner's dir is removed");
    assert!(mine.exists(), "a live owner's dir is kept");
    drop(c);
    std::fs::remove_dir_all(mine).unwrap();
}
