//! The Serving Endpoints API of the local workspace: shapes, enums and
//! errors, and a deployment that fails (a model that does not load) ending
//! in UPDATE_FAILED with the server's last words. Serving real R models:
//! tests/testthat/test-serve.R.

mod local_support;

use std::time::{Duration, Instant};

use local_support::start;
use reqwest::Method;
use serde_json::json;

fn config(model: &str, version: &str) -> serde_json::Value {
    json!({"served_entities": [{"entity_name": model, "entity_version": version}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_endpoints_shapes_errors_and_a_failed_deployment() {
    let api = start(|_| {});
    // A registered version's files, but not a model MLflow can load.
    let dir = api.c.state_dir().join("uc-models/main/s/broken/1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("MLmodel"), "not: [a model").unwrap();

    let anon = api.client.post(api.url("/api/2.0/serving-endpoints")).json(&json!({}));
    assert_eq!(api.send(anon).await.status, 401);
    let anon = api.client.post(api.url("/serving-endpoints/x/invocations")).body("{}");
    assert_eq!(api.send(anon).await.status, 401);

    let r = api.post("/api/2.0/serving-endpoints", json!({"name": "no spaces", "config": config("main.s.broken", "1")})).await;
    assert_eq!((r.status, r.body["error_code"].as_str()), (400, Some("INVALID_PARAMETER_VALUE")));
    let r = api.post("/api/2.0/serving-endpoints", json!({"name": "e", "config": config("main.s.broken", "2")})).await;
    assert_eq!((r.status, r.body["error_code"].as_str()), (404, Some("RESOURCE_DOES_NOT_EXIST")));
    let r = api.post("/api/2.0/serving-endpoints", json!({"name": "e", "config": config("s.broken", "1")})).await;
    assert_eq!(r.status, 400);
    let two = json!({"served_entities": [config("main.s.broken", "1")["served_entities"][0], config("main.s.broken", "1")["served_entities"][0]]});
    let r = api.post("/api/2.0/serving-endpoints", json!({"name": "e", "config": two})).await;
    assert_eq!(r.status, 400);
    assert!(r.body["message"].as_str().unwrap().contains("exactly one"), "{:?}", r.body);

    let r = api.post("/api/2.0/serving-endpoints", json!({"name": "e", "config": config("main.s.broken", "1")})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "e");
    assert_eq!(r.body["state"], json!({"ready": "NOT_READY", "config_update": "IN_PROGRESS"}));
    let e = &r.body["pending_config"]["served_entities"][0];
    assert_eq!((e["name"].as_str(), e["entity_name"].as_str(), e["entity_version"].as_str()),
               (Some("broken-1"), Some("main.s.broken"), Some("1")));
    assert_eq!((e["workload_size"].as_str(), e["scale_to_zero_enabled"].as_bool()), (Some("Small"), Some(false)));
    assert_eq!(e["state"]["deployment"], "DEPLOYMENT_CREATING");
    assert!(r.body.get("config").is_none());

    let r = api.post("/api/2.0/serving-endpoints", json!({"name": "e", "config": config("main.s.broken", "1")})).await;
    assert_eq!((r.status, r.body["error_code"].as_str()), (409, Some("RESOURCE_ALREADY_EXISTS")));
    let put = api.req(Method::PUT, "/api/2.0/serving-endpoints/e/config").json(&config("main.s.broken", "1"));
    let r = api.send(put).await;
    assert_eq!((r.status, r.body["error_code"].as_str()), (409, Some("RESOURCE_CONFLICT")));
    let r = api.post("/serving-endpoints/e/invocations", json!({"inputs": {"x": [1]}})).await;
    assert_eq!((r.status, r.body["error_code"].as_str()), (503, Some("TEMPORARILY_UNAVAILABLE")));

    // The server cannot load the model: the update fails, saying why.
    let began = Instant::now();
    let r = loop {
        let r = api.get("/api/2.0/serving-endpoints/e").await;
        if r.body["state"]["config_update"] != "IN_PROGRESS" || began.elapsed() > Duration::from_secs(180) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.body["state"], json!({"ready": "NOT_READY", "config_update": "UPDATE_FAILED"}), "{:?}", r.body);
    let st = &r.body["pending_config"]["served_entities"][0]["state"];
    assert_eq!(st["deployment"], "DEPLOYMENT_FAILED");
    assert!(st["deployment_state_message"].as_str().unwrap().contains("exited"), "{st:?}");

    let r = api.get("/api/2.0/serving-endpoints").await;
    assert_eq!(r.body["endpoints"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["endpoints"][0]["name"], "e");

    let r = api.send(api.req(Method::DELETE, "/api/2.0/serving-endpoints/e")).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    let r = api.get("/api/2.0/serving-endpoints/e").await;
    assert_eq!((r.status, r.body["error_code"].as_str()), (404, Some("RESOURCE_DOES_NOT_EXIST")));
    let r = api.send(api.req(Method::DELETE, "/api/2.0/serving-endpoints/e")).await;
    assert_eq!(r.status, 404);
    let r = api.post("/serving-endpoints/e/invocations", json!({})).await;
    assert_eq!(r.status, 404);
    assert_eq!(api.get("/api/2.0/serving-endpoints").await.body, json!({"endpoints": []}));
}
