//! Model Serving on the local cluster: the Serving Endpoints API subset
//! (`/api/2.0/serving-endpoints`: create, list, get, update config, delete)
//! and queries (`POST /serving-endpoints/<name>/invocations`, behind the
//! token like every route), over `serving_state`'s endpoints.
//!
//! An endpoint serves one registered Unity Catalog model version (its files:
//! `uc_artifacts::version_dir`) with MLflow's own scoring server, the app
//! and command `mlflow models serve -m <version> --env-manager local` runs
//! (`scoring_server.get_cmd`), bound to a Unix socket instead of a port and
//! run by the cluster's Python with the environment of a context's R (rpy2,
//! the cluster's R library), so an R model logged by `remote_log_model()`
//! answers as it does in `mlflow.pyfunc.load_model()`. Deploying a config is
//! asynchronous, as on a workspace: `state.config_update` is IN_PROGRESS
//! until the server answers, then the endpoint swaps to it.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header::CONTENT_TYPE, HeaderMap};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Map, Value};

use super::cluster::now_ms;
use super::reply::{api, invalid, ok, Reply};
use super::serving_state::{Endpoint, Pending, Served};
use super::state::{Local, Shared};

/// Largest query body (a workspace's limit: 16 MB).
const QUERY_MAX: usize = 16 << 20;
/// A query's longest wait for the scoring server.
const QUERY_TIMEOUT: Duration = Duration::from_secs(300);

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/api/2.0/serving-endpoints", post(create).get(list))
        .route("/api/2.0/serving-endpoints/{name}", get(get_endpoint).delete(delete))
        .route("/api/2.0/serving-endpoints/{name}/config", put(update_config))
        .route("/serving-endpoints/{name}/invocations", post(invocations))
}

// ---- request checks -------------------------------------------------------------------

fn not_found(name: &str) -> Response {
    api(404, "RESOURCE_DOES_NOT_EXIST", format!("Endpoint with name '{name}' does not exist."))
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(api(400, "MALFORMED_REQUEST", "The request body is not a JSON object.")),
    }
}

/// Letters, digits, `-` and `_`, at most 63: what a workspace takes.
fn check_endpoint_name(name: &str) -> Result<(), Response> {
    let fine = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fine {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid endpoint name '{name}': use at most 63 letters, digits, dashes and underscores."
        )))
    }
}

/// The one served entity of a config (`served_entities`, or the older
/// `served_models`), checked against the registry's storage.
fn served_of(local: &Local, config: Option<&Value>) -> Result<Served, Response> {
    let Some(config) = config.and_then(Value::as_object) else {
        return Err(invalid("Missing value for required parameter 'config'."));
    };
    let (list, name_key, version_key) = match (config.get("served_entities"), config.get("served_models")) {
        (Some(Value::Array(a)), _) => (a, "entity_name", "entity_version"),
        (_, Some(Value::Array(a))) => (a, "model_name", "model_version"),
        _ => return Err(invalid("The config has no served_entities.")),
    };
    let [e] = list.as_slice() else {
        return Err(invalid(format!(
            "The config has {} served entities; the local workspace serves exactly one per endpoint.",
            list.len()
        )));
    };
    let text = |k: &str| match &e[k] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let entity_name = text(name_key).ok_or_else(|| invalid(format!("Missing value for required parameter '{name_key}'.")))?;
    let parts: Vec<&str> = entity_name.split('.').collect();
    let plain = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if parts.len() != 3 || !parts.iter().all(plain) {
        return Err(invalid(format!(
            "'{entity_name}' is not a Unity Catalog model name (catalog.schema.model)."
        )));
    }
    let version = text(version_key).ok_or_else(|| invalid(format!("Missing value for required parameter '{version_key}'.")))?;
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(format!("'{version}' is not a model version number.")));
    }
    let dir = super::uc_artifacts::version_dir(local, &entity_name, &version);
    if !dir.join("MLmodel").is_file() || super::uc_artifacts::is_pending(local, &entity_name, &version) {
        return Err(api(
            404,
            "RESOURCE_DOES_NOT_EXIST",
            format!("Model version {version} of '{entity_name}' does not exist or is not READY."),
        ));
    }
    let workload_size = text("workload_size").unwrap_or_else(|| "Small".into());
    if !["Small", "Medium", "Large"].contains(&workload_size.as_str()) {
        return Err(invalid(format!("Invalid workload_size '{workload_size}': use Small, Medium or Large.")));
    }
    let model = parts[2];
    Ok(Served {
        name: text("name").unwrap_or_else(|| format!("{model}-{version}")),
        entity_name,
        entity_version: version,
        workload_size,
        scale_to_zero_enabled: e["scale_to_zero_enabled"].as_bool().unwrap_or(false),
        created_ms: now_ms(),
    })
}

// ---- answers --------------------------------------------------------------------------

fn entity_json(s: &Served, deployment: &str, message: &str) -> Value {
    json!({
        "name": s.name, "entity_name": s.entity_name, "entity_version": s.entity_version,
        "workload_size": s.workload_size, "scale_to_zero_enabled": s.scale_to_zero_enabled,
        "creator": super::identity::LOCAL_USER, "creation_timestamp": s.created_ms,
        "state": {"deployment": deployment, "deployment_state_message": message},
    })
}

fn config_json(s: &Served, version: u64, deployment: &str, message: &str) -> Value {
    json!({
        "served_entities": [entity_json(s, deployment, message)],
        "traffic_config": {"routes": [{"served_model_name": s.name, "served_entity_name": s.name, "traffic_percentage": 100}]},
        "config_version": version,
    })
}

fn endpoint_json(name: &str, e: &Endpoint) -> Value {
    let mut v = json!({
        "name": name, "id": e.id, "creator": e.creator,
        "creation_timestamp": e.created_ms, "last_updated_timestamp": e.updated_ms,
        "state": {
            "ready": if e.active.is_some() { "READY" } else { "NOT_READY" },
            "config_update": if e.pending.is_some() { "IN_PROGRESS" } else if e.failed.is_some() { "UPDATE_FAILED" } else { "NOT_UPDATING" },
        },
        "permission_level": "CAN_MANAGE",
        "route_optimized": false,
    });
    if let Some(a) = &e.active {
        let msg = format!(
            "Serving {} version {} with MLflow's scoring server (pid {}).",
            a.served.entity_name, a.served.entity_version, a.scorer.pid.unwrap_or(0)
        );
        v["config"] = config_json(&a.served, a.config_version, "DEPLOYMENT_READY", &msg);
    }
    let pending = match (&e.pending, &e.failed) {
        (Some(p), _) => Some((p, "DEPLOYMENT_CREATING", "Starting MLflow's scoring server.".to_string())),
        (None, Some((p, why))) => Some((p, "DEPLOYMENT_FAILED", why.clone())),
        _ => None,
    };
    if let Some((p, deployment, msg)) = pending {
        let mut c = config_json(&p.served, p.config_version, deployment, &msg);
        c["start_time"] = json!(p.start_ms);
        v["pending_config"] = c;
    }
    v
}

// ---- routes ---------------------------------------------------------------------------

async fn create(State(Shared(local)): State<Shared>, body: Bytes) -> Reply {
    let f = body_object(&body)?;
    let name = match f.get("name") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(invalid("Missing value for required parameter 'name'.")),
    };
    check_endpoint_name(&name)?;
    let served = served_of(&local, f.get("config"))?;
    let now = now_ms();
    let pending = Pending { served, config_version: 1, start_ms: now };
    let answer = {
        let mut t = local.endpoints.lock();
        if t.contains_key(&name) {
            return Err(api(409, "RESOURCE_ALREADY_EXISTS", format!("Endpoint with name '{name}' already exists.")));
        }
        let e = Endpoint {
            id: super::util::random_hex(16),
            creator: super::identity::LOCAL_USER.into(),
            created_ms: now,
            updated_ms: now,
            active: None,
            pending: Some(pending.clone()),
            failed: None,
            config_version: 1,
        };
        let v = endpoint_json(&name, &e);
        t.insert(name.clone(), e);
        v
    };
    super::serving_deploy::deploy(local, name, pending);
    ok(answer)
}

async fn list(State(Shared(local)): State<Shared>) -> Reply {
    let t = local.endpoints.lock();
    let mut names: Vec<&String> = t.keys().collect();
    names.sort();
    let endpoints: Vec<Value> = names.into_iter().map(|n| endpoint_json(n, &t[n])).collect();
    ok(json!({"endpoints": endpoints}))
}

async fn get_endpoint(State(Shared(local)): State<Shared>, Path(name): Path<String>) -> Reply {
    let t = local.endpoints.lock();
    let e = t.get(&name).ok_or_else(|| not_found(&name))?;
    ok(endpoint_json(&name, e))
}

async fn update_config(State(Shared(local)): State<Shared>, Path(name): Path<String>, body: Bytes) -> Reply {
    let f = body_object(&body)?;
    // The body is the config itself (served_entities, traffic_config).
    let served = served_of(&local, Some(&Value::Object(f)))?;
    let (answer, pending) = {
        let mut t = local.endpoints.lock();
        let e = t.get_mut(&name).ok_or_else(|| not_found(&name))?;
        if e.pending.is_some() {
            return Err(api(
                409,
                "RESOURCE_CONFLICT",
                format!("Endpoint '{name}' is being updated; wait until its config_update is NOT_UPDATING."),
            ));
        }
        e.config_version += 1;
        let now = now_ms();
        let p = Pending { served, config_version: e.config_version, start_ms: now };
        e.pending = Some(p.clone());
        e.failed = None;
        e.updated_ms = now;
        (endpoint_json(&name, e), p)
    };
    super::serving_deploy::deploy(local, name, pending);
    ok(answer)
}

async fn delete(State(Shared(local)): State<Shared>, Path(name): Path<String>) -> Reply {
    if local.endpoints.remove(&name) {
        ok(json!({}))
    } else {
        Err(not_found(&name))
    }
}

/// A query, relayed to the endpoint's scoring server; its answer
/// (`{"predictions": ...}`, or MLflow's error) relayed back.
async fn invocations(
    State(Shared(local)): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let scorer = match local.endpoints.scorer(&name) {
        Some(s) => s,
        None if local.endpoints.lock().contains_key(&name) => {
            return Err(api(503, "TEMPORARILY_UNAVAILABLE", format!("Endpoint '{name}' is not ready yet.")))
        }
        None => return Err(not_found(&name)),
    };
    let bytes = axum::body::to_bytes(body, QUERY_MAX)
        .await
        .map_err(|_| invalid(format!("The request body exceeds the maximum of {QUERY_MAX} bytes.")))?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let resp = scorer
        .client
        .post(format!("{}/invocations", super::mlflow::SERVER_BASE))
        .header(CONTENT_TYPE, content_type)
        .body(bytes)
        .timeout(QUERY_TIMEOUT)
        .send()
        .await
        .map_err(|e| api(503, "TEMPORARILY_UNAVAILABLE", format!("The scoring server of '{name}' did not answer: {e}")))?;
    let status = resp.status().as_u16();
    let ct = resp.headers().get(CONTENT_TYPE).cloned();
    let out = resp
        .bytes()
        .await
        .map_err(|e| api(503, "TEMPORARILY_UNAVAILABLE", format!("The scoring server of '{name}' broke off: {e}")))?;
    // The query holds the server until its answer is read, even across a swap.
    drop(scorer);
    let mut b = Response::builder().status(status);
    if let Some(ct) = ct {
        b = b.header(CONTENT_TYPE, ct);
    }
    Ok(b.body(Body::from(out)).unwrap_or_else(|e| api(500, "INTERNAL_ERROR", e.to_string())))
}
