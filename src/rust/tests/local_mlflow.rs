//! The local cluster's MLflow routes: proxied to a real `mlflow server` started
//! on the first request (authenticated like every route), run artifacts under
//! dbfs:/databricks/mlflow-tracking streamed through the workspace's Files API
//! both ways beyond the small-body limit, the server stopped with the cluster;
//! without MLflow in the cluster's Python, a 501 naming the fix.

mod local_support;

use std::time::Duration;

use local_support::start;
use reqwest::Method;
use serde_json::json;

/// A Python that can import `module`: DBRXR_PYTHON (the project's venv in
/// `make test`) or /usr/bin/python3.
fn python_with(module: &str, want: bool) -> Option<String> {
    let cands = [std::env::var("DBRXR_PYTHON").unwrap_or_default(), "/usr/bin/python3".to_string()];
    cands.into_iter().filter(|p| !p.is_empty()).find(|p| {
        let ok = std::process::Command::new(p)
            .args(["-c", &format!("import {module}")])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok == want
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mlflow_the_routes_answer_501_naming_the_fix() {
    let Some(py) = python_with("mlflow", false) else {
        eprintln!("skipped: every Python here has MLflow");
        return;
    };
    let api = start(|o| o.python = Some(py.clone()));
    let r = api.send(api.client.get(api.url("/api/2.0/mlflow/experiments/search"))).await;
    assert_eq!(r.status, 401, "MLflow routes need the token too");
    let r = api.get("/api/2.0/mlflow/experiments/search").await;
    assert_eq!(r.status, 501, "{:?}", r.body);
    assert_eq!(r.body["error_code"], "FEATURE_DISABLED");
    assert!(r.body["message"].as_str().unwrap().contains("-m pip install mlflow"), "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_mlflow_server_behind_the_workspace_streams_artifacts_and_stops_with_the_cluster() {
    let Some(py) = python_with("mlflow", true) else {
        eprintln!("skipped: no Python with MLflow (set DBRXR_PYTHON to the project's .venv)");
        return;
    };
    let api = start(|o| o.python = Some(py.clone()));
    let r = api.post("/api/2.0/mlflow/experiments/create", json!({"name": "proxy-test"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let exp = r.body["experiment_id"].as_str().unwrap().to_string();
    let r = api.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=proxy-test").await;
    assert_eq!(r.body["experiment"]["experiment_id"], exp.as_str());
    // MLflow's own error bodies come through unchanged.
    let r = api.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error_code"], "RESOURCE_DOES_NOT_EXIST");

    // A run's artifacts live where a workspace's tracking server puts them,
    // and its Databricks client moves them through the Files API: 3 MB (the
    // small-body limit is 1 MiB) up and down, streamed.
    let r = api.post("/api/2.0/mlflow/runs/create", json!({"experiment_id": exp})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let run = r.body["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let uri = r.body["run"]["info"]["artifact_uri"].as_str().unwrap().to_string();
    assert_eq!(uri, format!("dbfs:/databricks/mlflow-tracking/{exp}/{run}/artifacts"));
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let path = format!("/api/2.0/fs/files/WorkspaceInternal/Mlflow/Artifacts/{exp}/Runs/{run}/artifacts/model.bin");
    let r = api.send(api.req(Method::PUT, &path).body(data.clone())).await;
    assert!(r.status == 200 || r.status == 204, "{} {:?}", r.status, r.body);
    let r = api.send(api.req(Method::GET, &path)).await;
    assert_eq!(r.status, 200);
    assert!(r.raw.as_ref() == data.as_slice(), "the artifact came back changed");
    let stored = api.c.state_dir().join(format!("fs/dbfs/databricks/mlflow-tracking/{exp}/{run}/artifacts/model.bin"));
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), data.len() as u64);
    // ... and the DBFS API sees the same file at the run's artifact URI.
    let r = api.get(&format!("/api/2.0/dbfs/get-status?path={}/model.bin", uri.trim_start_matches("dbfs:"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["file_size"], data.len() as u64);

    // Stopping the cluster stops the server: its socket closes.
    let socket = local_support::mlflow_socket(api.c.state_dir());
    assert!(std::os::unix::net::UnixStream::connect(&socket).is_ok(), "MLflow listens on {}", socket.display());
    api.c.stop();
    let mut closed = false;
    for _ in 0..50 {
        if std::os::unix::net::UnixStream::connect(&socket).is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the MLflow server still listens after stop()");
}
