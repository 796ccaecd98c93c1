//! The local workspace as an attacker on the same machine meets it: every
//! route needs the token (MLflow's own `/ajax-api/` included), MLflow's server
//! answers on no port, and no process the cluster started outlives it, whatever
//! is killed with SIGKILL (the MLflow launcher, or the cluster's host itself).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_dbrxr-local");
const TOKEN: &str = "dapi-security-test";

/// A Python that can import MLflow: DBRXR_PYTHON (the project's venv in `make test`).
fn python_with_mlflow() -> Option<String> {
    let py = std::env::var("DBRXR_PYTHON").ok().filter(|p| !p.is_empty())?;
    let ok = Command::new(&py).args(["-c", "import mlflow, rpy2"]).stderr(Stdio::null()).status();
    ok.map(|s| s.success()).unwrap_or(false).then_some(py)
}

/// The binary started as CI starts it, and its URL.
fn start_bin(py: &str) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--python", py])
        .env("DBRXR_LOCAL_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbrxr-local starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("dbrxr-local listening on ").expect("url line").to_string();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, url)
}

/// (pid, parent pid, state) of every process, from /proc.
fn processes() -> Vec<(i32, i32, char)> {
    let mut all = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        all.push((pid, ppid, state));
    }
    all
}

fn descendants(root: i32) -> Vec<i32> {
    let all = processes();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, pp, _)| *pp == parent).map(|(p, _, _)| *p));
        i += 1;
    }
    found.remove(0);
    found
}

fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()).replace('\0', " ")
}

/// Alive and not a zombie (a killed process stays one until someone reaps it).
fn running(pid: i32) -> bool {
    processes().iter().any(|(p, _, s)| *p == pid && *s != 'Z')
}

fn all_end_within(pids: &[i32], wait: Duration) -> Vec<i32> {
    let until = std::time::Instant::now() + wait;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| running(*p)).collect();
        if left.is_empty() || std::time::Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// TCP ports `pid` listens on (its socket inodes found in /proc/net/tcp*).
fn listening_ports(pid: i32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| l.to_string_lossy().strip_prefix("socket:[")?.strip_suffix(']').map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for l in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let port = f[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
                ports.extend(port);
            }
        }
    }
    ports
}

fn mlflow_processes(host: i32) -> Vec<i32> {
    descendants(host).into_iter().filter(|p| cmdline(*p).contains("mlflow")).collect()
}

/// SIGKILL to the host when the test ends, passed or failed.
struct KillOnDrop(i32);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

async fn status(c: &reqwest::Client, method: reqwest::Method, url: String, token: Option<&str>) -> u16 {
    let mut r = c.request(method, url).timeout(Duration::from_secs(300)).body("{}");
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[test]
fn every_route_needs_the_token_mlflow_answers_on_no_port_and_nothing_outlives_the_cluster() {
    let Some(py) = python_with_mlflow() else {
        eprintln!("skipped: no Python with MLflow and rpy2 (set DBRXR_PYTHON to the project's .venv)");
        return;
    };
    let (mut host, url) = start_bin(&py);
    let host_pid = host.id() as i32;
    let _kill_on_failure = KillOnDrop(host_pid);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let c = reqwest::Client::new();
    use reqwest::Method;

    // Every prefix the workspace serves, MLflow's proxied ones first (the
    // issue's repro deleted a registered model through /ajax-api/ with no
    // token), then the rest and a path it does not serve.
    let routes = [
        (Method::POST, "/ajax-api/2.0/mlflow/registered-models/delete"),
        (Method::GET, "/ajax-api/2.0/mlflow/registered-models/search"),
        (Method::GET, "/ajax-api/2.0/mlflow-artifacts/artifacts"),
        (Method::GET, "/ajax-api/3.0/mlflow/traces"),
        (Method::GET, "/api/2.0/mlflow/registered-models/search"),
        (Method::DELETE, "/api/2.0/mlflow/registered-models/delete"),
        (Method::GET, "/api/2.0/mlflow-artifacts/artifacts"),
        (Method::GET, "/api/3.0/mlflow/traces"),
        (Method::GET, "/api/2.1/clusters/get?cluster_id=local-cluster"),
        (Method::GET, "/api/2.2/jobs/list"),
        (Method::GET, "/api/2.0/dbfs/list?path=/"),
        (Method::GET, "/_local/stats"),
        (Method::GET, "/static-files/index.html"),
        (Method::GET, "/health"),
        (Method::GET, "/nothing/here"),
    ];
    for (m, path) in &routes {
        let none = rt.block_on(status(&c, m.clone(), format!("{url}{path}"), None));
        assert_eq!(none, 401, "{m} {path} without a token");
        let wrong = rt.block_on(status(&c, m.clone(), format!("{url}{path}"), Some("dapi-wrong")));
        assert_eq!(wrong, 403, "{m} {path} with a wrong token");
    }
    // The S3 store and presigned URLs take no bearer token: their credential
    // is a grant the registry handed out, and a made-up one is refused.
    for path in ["/s3/dbrxr-uc?list-type=2", "/s3/dbrxr-uc/models/main/s/m/1/MLmodel", "/presigned/0123abcd"] {
        assert_eq!(rt.block_on(status(&c, Method::GET, format!("{url}{path}"), None)), 403, "{path}");
        assert_eq!(rt.block_on(status(&c, Method::GET, format!("{url}{path}"), Some(TOKEN))), 403, "{path}");
    }
    // OAuth discovery stays public, as on a workspace.
    assert_eq!(rt.block_on(status(&c, Method::GET, format!("{url}/.well-known/databricks-config"), None)), 200);

    // With the token, MLflow answers (its server starts now) on both prefixes.
    for path in ["/api/2.0/mlflow/registered-models/search", "/ajax-api/2.0/mlflow/registered-models/search"] {
        assert_eq!(rt.block_on(status(&c, Method::GET, format!("{url}{path}"), Some(TOKEN))), 200, "{path}");
    }
    registry_rules(&rt, &c, &url);

    // MLflow's own server listens on no TCP port: nothing reaches it but the
    // workspace's routes (its Unix socket lies in a directory only this user
    // may enter).
    let mlflow = mlflow_processes(host_pid);
    assert!(!mlflow.is_empty(), "the MLflow server runs under the cluster");
    for p in &mlflow {
        let ports = listening_ports(*p);
        for port in &ports {
            let direct = rt.block_on(status(&c, Method::GET, format!("http://127.0.0.1:{port}/health"), None));
            assert!(direct != 200, "MLflow process {p} answers /health on 127.0.0.1:{port} without a token");
        }
        assert!(ports.is_empty(), "MLflow process {p} ({}) listens on TCP {ports:?}", cmdline(*p));
        if let Some(uds) = cmdline(*p).split("--uds ").nth(1).and_then(|s| s.split_whitespace().next()) {
            let dir = std::path::Path::new(uds).parent().unwrap();
            let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{} is open to other users", dir.display());
        }
    }

    // SIGKILL to every MLflow process but the web server itself (the one
    // that serves: the newest): the web server ends with them.
    let web = *mlflow.iter().max_by_key(|p| mlflow.iter().filter(|q| descendants(**q).contains(p)).count()).unwrap();
    for p in mlflow.iter().filter(|p| **p != web) {
        unsafe { libc::kill(*p, libc::SIGKILL) };
    }
    let left = all_end_within(&[web], Duration::from_secs(10));
    assert!(left.is_empty(), "MLflow's web server {web} ({}) outlived its launcher", cmdline(web));

    // MLflow restarts on a next request (one that meets the crash may get 503
    // TEMPORARILY_UNAVAILABLE, which clients retry); a context runs too.
    // SIGKILL to the cluster's host process: every process it started ends.
    let mut answered = 0;
    for _ in 0..5 {
        answered = rt.block_on(status(&c, Method::GET, format!("{url}/api/2.0/mlflow/registered-models/search"), Some(TOKEN)));
        if answered != 503 {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert_eq!(
        answered,
        200
    );
    let ctx = rt.block_on(async {
        let r = c
            .post(format!("{url}/api/1.2/contexts/create"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"clusterId": "local-cluster", "language": "python"}))
            .send()
            .await
            .unwrap();
        r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    });
    assert!(!ctx.is_empty());
    let children = descendants(host_pid);
    assert!(mlflow_processes(host_pid).len() >= 2, "MLflow's launcher and web server run: {children:?}");
    host.kill().unwrap(); // SIGKILL: no stop() runs
    host.wait().unwrap();
    let left = all_end_within(&children, Duration::from_secs(10));
    let named: Vec<String> = left.iter().map(|p| format!("{p}: {}", cmdline(*p))).collect();
    assert!(left.is_empty(), "processes outlived the killed cluster: {named:?}");
}

async fn call(c: &reqwest::Client, method: reqwest::Method, url: String, body: Vec<u8>) -> (u16, serde_json::Value) {
    let r = c.request(method, url).bearer_auth(TOKEN).header("content-type", "application/json").body(body);
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Unity Catalog's rules, as the official MLflow client meets them on both
/// of MLflow's prefixes: three-level names of at most 255 characters, and a
/// version only with a signature of inputs and outputs.
fn registry_rules(rt: &tokio::runtime::Runtime, c: &reqwest::Client, url: &str) {
    use reqwest::Method;
    let post = |path: &str, body: serde_json::Value| {
        rt.block_on(call(c, Method::POST, format!("{url}{path}"), body.to_string().into_bytes()))
    };
    for prefix in ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"] {
        for bad in ["evil.two".to_string(), "lm".to_string(), format!("main.m.{}", "x".repeat(293))] {
            let (s, b) = post(&format!("{prefix}/registered-models/create"), serde_json::json!({"name": bad}));
            assert_eq!(s, 400, "{prefix}: {bad:.20} was created: {b}");
            assert_eq!(b["error_code"], "INVALID_PARAMETER_VALUE", "{b}");
        }
    }
    let (s, b) = post("/api/2.0/mlflow/registered-models/create", serde_json::json!({"name": "main.sec.ok"}));
    assert_eq!(s, 200, "{b}");
    let (s, b) = post(
        "/ajax-api/2.0/mlflow/registered-models/rename",
        serde_json::json!({"name": "main.sec.ok", "new_name": "evil.two"}),
    );
    assert_eq!((s, b["error_code"].as_str()), (400, Some("INVALID_PARAMETER_VALUE")), "{b}");
    let search = rt.block_on(call(c, Method::GET, format!("{url}/api/2.0/mlflow/registered-models/search"), vec![]));
    let names: Vec<&str> = search.1["registered_models"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["main.sec.ok"], "only the three-level name was registered");

    // Models in a run's artifacts: without a signature, with inputs only, with both.
    let (s, run) = post("/api/2.0/mlflow/runs/create", serde_json::json!({"experiment_id": "0"}));
    assert_eq!(s, 200, "{run}");
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let put = |dir: &str, mlmodel: &str| {
        // Where a workspace's client writes a run's artifacts: the Files API.
        let path = format!("{url}/api/2.0/fs/files/WorkspaceInternal/Mlflow/Artifacts/0/Runs/{run_id}/artifacts/{dir}/MLmodel");
        let (s, _) = rt.block_on(call(c, Method::PUT, path, mlmodel.as_bytes().to_vec()));
        assert!(s == 200 || s == 204, "{s}");
    };
    put("nosig", "flavors:\n  python_function:\n    loader_module: x\n");
    put("inonly", "flavors:\n  python_function: {}\nsignature:\n  inputs: '[{\"type\": \"double\"}]'\n  outputs: null\n");
    put("withsig", "flavors:\n  python_function: {}\nsignature:\n  inputs: '[{\"type\": \"double\"}]'\n  outputs: '[{\"type\": \"double\"}]'\n");
    for (dir, want) in [("nosig", 400), ("inonly", 400), ("nowhere", 400), ("withsig", 200)] {
        let (s, b) = post(
            "/api/2.0/mlflow/model-versions/create",
            serde_json::json!({"name": "main.sec.ok", "run_id": run_id,
                               "source": format!("dbfs:/databricks/mlflow-tracking/0/{run_id}/artifacts/{dir}")}),
        );
        assert_eq!(s, want, "{dir}: {b}");
        if want == 400 {
            assert_eq!(b["error_code"], "INVALID_PARAMETER_VALUE", "{b}");
        }
    }
}
