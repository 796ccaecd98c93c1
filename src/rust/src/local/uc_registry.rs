//! The Unity Catalog model registry as MLflow's client calls it with
//! `MLFLOW_REGISTRY_URI=databricks-uc` (`/api/2.0/mlflow/unity-catalog/...`,
//! `UcModelRegistryService`), so Python written for a workspace registers
//! and loads `models:/catalog.schema.model@alias` here unchanged.
//!
//! One registry: models and versions live in the cluster's MLflow server
//! (its open-source registry, reached through `Mlflow::client`); these routes
//! translate the UC messages to and from it. What UC adds is kept here: a
//! version is PENDING_REGISTRATION until `finalize` (a marker file), its
//! files live in the cluster's own storage (`uc_artifacts`), and the
//! storage credentials say DEFAULT_STORAGE, so the client moves files
//! through presigned URLs of this server and needs no cloud credentials.
//!
//! Also here: [`cluster_credentials_env`], what contexts and job tasks get so
//! that they reach this workspace as a Databricks cluster's code reaches its own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::reply::{api, invalid, ok, Reply};
use super::mlflow::call as oss;
use super::state::{Local, Shared};

const UC: &str = "/api/2.0/mlflow/unity-catalog";

pub fn router() -> Router<Shared> {
    let r = |p: &str| format!("{UC}/{p}");
    Router::new()
        .route(&r("registered-models/create"), post(create_model))
        .route(&r("registered-models/update"), patch(update_model))
        .route(&r("registered-models/delete"), delete(delete_model))
        .route(&r("registered-models/get"), get(get_model))
        .route(&r("registered-models/search"), get(search_models))
        .route(&r("registered-models/alias"), post(set_alias).delete(delete_alias).get(get_by_alias))
        .route(&r("registered-models/set-tag"), post(forward))
        .route(&r("registered-models/delete-tag"), delete(forward))
        .route(
            &r("registered-models:is-databricks-sdk-models-artifact-repository-enabled"),
            get(|| async { ok(json!({"is_databricks_sdk_models_artifact_repository_enabled": false})) }),
        )
        .route(&r("model-versions/create"), post(create_version))
        .route(&r("model-versions/finalize"), post(finalize_version))
        .route(&r("model-versions/generate-temporary-credentials"), post(credentials))
        .route(&r("model-versions/get"), get(get_version))
        .route(&r("model-versions/get-download-uri"), get(download_uri))
        .route(&r("model-versions/search"), get(search_versions))
        .route(&r("model-versions/update"), patch(update_version))
        .route(&r("model-versions/delete"), delete(delete_version))
        .route(&r("model-versions/set-tag"), post(forward))
        .route(&r("model-versions/delete-tag"), delete(forward))
        .route(&r("model-versions/emit-lineage"), post(|| async { ok(json!({})) }))
        .merge(super::uc_artifacts::router())
        .merge(super::uc_s3::router())
}

/// Environment of context and job-task processes: the workspace is this
/// server, reached with a token minted for the cluster (never the client's),
/// MLflow tracking `databricks` and registry `databricks-uc`, as the
/// Databricks runtime sets them for a cluster's notebooks and tasks.
pub fn cluster_credentials_env(url: &str, cluster_token: &str) -> Vec<(String, String)> {
    let s3 = format!("{url}{}", super::uc_s3::PREFIX.trim_end_matches('/'));
    [
        ("DATABRICKS_HOST", url),
        ("DATABRICKS_TOKEN", cluster_token),
        ("MLFLOW_TRACKING_URI", "databricks"),
        ("MLFLOW_REGISTRY_URI", "databricks-uc"),
        // The storage of the registry's classic mode (uc_s3), where a cloud
        // workspace's clients reach S3 itself.
        ("MLFLOW_S3_ENDPOINT_URL", &s3),
        // Logging a model must not try to reach PyPI to pin versions.
        ("MLFLOW_DISABLE_ENV_CREATION", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

// ---- request and registry plumbing -------------------------------------------------

/// The request's fields: the query string's and the JSON body's (the client
/// sends GET fields in the query, the others in the body).
fn fields(query: Option<String>, body: &[u8]) -> Result<Map<String, Value>, Response> {
    let mut m = Map::new();
    if let Some(q) = query {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&q).map_err(|_| invalid("The query string is not valid."))?;
        for (k, v) in pairs {
            m.insert(k, Value::String(v));
        }
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(o)) => m.extend(o),
            _ => return Err(invalid("The request body is not a JSON object.")),
        }
    }
    Ok(m)
}

fn text<'a>(f: &'a Map<String, Value>, key: &str) -> Result<&'a str, Response> {
    match f.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(invalid(format!("Missing value for required parameter '{key}'."))),
    }
}

/// A version number as the client sends it (a string), or a number.
fn version_of(f: &Map<String, Value>) -> Result<String, Response> {
    let v = match f.get("version") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(invalid("Missing value for required parameter 'version'.")),
    };
    if v.is_empty() || !v.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(format!("'{v}' is not a model version number.")));
    }
    Ok(v)
}

/// A three-level name (`catalog.schema.model`) whose parts are plain
/// identifiers: what Unity Catalog takes and what maps safely onto storage.
fn model_name(f: &Map<String, Value>) -> Result<String, Response> {
    let name = text(f, "name")?;
    let parts: Vec<&str> = name.split('.').collect();
    let plain = |p: &&str| {
        !p.is_empty() && p.len() <= 255 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if parts.len() != 3 || !parts.iter().all(plain) {
        return Err(invalid(format!(
            "'{name}' is not a valid Unity Catalog model name: use catalog.schema.model."
        )));
    }
    Ok(name.to_string())
}



// ---- UC state kept here: pending versions -----------------------------------------

// ---- translation of the registry's entities -----------------------------------------

/// An open-source registry model version as a UC one: aliases as
/// `{alias, version}`, its storage, its UC status; no stages.
fn uc_version(local: &Local, mut v: Value) -> Value {
    let name = v["name"].as_str().unwrap_or_default().to_string();
    let version = v["version"].as_str().map(str::to_string).unwrap_or_else(|| v["version"].to_string());
    if let Some(o) = v.as_object_mut() {
        o.remove("current_stage");
        o.remove("run_link");
        let aliases: Vec<Value> = o
            .get("aliases")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(|s| json!({"alias": s, "version": version})).collect())
            .unwrap_or_default();
        o.insert("aliases".into(), Value::Array(aliases));
        o.insert("storage_location".into(), json!(super::uc_s3::storage_location(&name, &version)));
        if super::uc_artifacts::is_pending(local, &name, &version) {
            o.insert("status".into(), json!("PENDING_REGISTRATION"));
        }
    }
    v
}

fn uc_model(mut m: Value) -> Value {
    if let Some(o) = m.as_object_mut() {
        o.remove("latest_versions");
    }
    m
}

fn three_level(name: &str) -> bool {
    name.split('.').count() == 3
}

// ---- registered models --------------------------------------------------------------

async fn create_model(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let name = model_name(&f)?;
    let mut req = json!({"name": name});
    for k in ["tags", "description", "deployment_job_id"] {
        if let Some(v) = f.get(k) {
            req[k] = v.clone();
        }
    }
    let v = oss(&local, Method::POST, "registered-models/create", req).await?;
    ok(json!({"registered_model": uc_model(v["registered_model"].clone())}))
}

async fn update_model(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let mut name = model_name(&f)?;
    if let Some(Value::String(new)) = f.get("new_name") {
        let mut nf = Map::new();
        nf.insert("name".into(), json!(new));
        let new = model_name(&nf)?;
        oss(&local, Method::POST, "registered-models/rename", json!({"name": name, "new_name": new})).await?;
        let (from, to) = (super::uc_artifacts::model_dir(&local, &name), super::uc_artifacts::model_dir(&local, &new));
        if from.exists() {
            if let Some(p) = to.parent() {
                let _ = std::fs::create_dir_all(p);
            }
            std::fs::rename(&from, &to).map_err(|e| super::reply::io("INTERNAL_ERROR", "could not move the model's files", &e))?;
        }
        name = new;
    }
    if let Some(d) = f.get("description") {
        oss(&local, Method::PATCH, "registered-models/update", json!({"name": name, "description": d})).await?;
    }
    let v = oss(&local, Method::GET, "registered-models/get", json!({"name": name})).await?;
    ok(json!({"registered_model": uc_model(v["registered_model"].clone())}))
}

async fn delete_model(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let name = model_name(&f)?;
    oss(&local, Method::DELETE, "registered-models/delete", json!({"name": name})).await?;
    super::uc_artifacts::forget(&local, &super::uc_artifacts::model_dir(&local, &name));
    super::uc_artifacts::forget_pending(&local, &name);
    ok(json!({}))
}

async fn get_model(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let name = model_name(&f)?;
    let v = oss(&local, Method::GET, "registered-models/get", json!({"name": name})).await?;
    ok(json!({"registered_model": uc_model(v["registered_model"].clone())}))
}

async fn search_models(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let mut req = json!({"max_results": f.get("max_results").cloned().unwrap_or(json!("1000"))});
    if let Some(t) = f.get("page_token") {
        req["page_token"] = t.clone();
    }
    let v = oss(&local, Method::GET, "registered-models/search", req).await?;
    // Only Unity Catalog's names: the open-source registry may hold others.
    let models: Vec<Value> = v["registered_models"]
        .as_array()
        .map(|a| a.iter().filter(|m| three_level(m["name"].as_str().unwrap_or_default())).cloned().map(uc_model).collect())
        .unwrap_or_default();
    let mut out = json!({"registered_models": models});
    if let Some(t) = v.get("next_page_token") {
        out["next_page_token"] = t.clone();
    }
    ok(out)
}

// ---- aliases and tags -----------------------------------------------------------------

async fn set_alias(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let (name, alias, version) = (model_name(&f)?, text(&f, "alias")?.to_string(), version_of(&f)?);
    oss(&local, Method::POST, "registered-models/alias", json!({"name": name, "alias": alias, "version": version}))
        .await?;
    ok(json!({}))
}

async fn delete_alias(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let (name, alias) = (model_name(&f)?, text(&f, "alias")?.to_string());
    oss(&local, Method::DELETE, "registered-models/alias", json!({"name": name, "alias": alias})).await?;
    ok(json!({}))
}

async fn get_by_alias(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let (name, alias) = (model_name(&f)?, text(&f, "alias")?.to_string());
    let v = oss(&local, Method::GET, "registered-models/alias", json!({"name": name, "alias": alias})).await?;
    ok(json!({"model_version": uc_version(&local, v["model_version"].clone())}))
}

/// Tag routes: the same messages in both registries.
async fn forward(
    State(Shared(local)): State<Shared>,
    method: Method,
    uri: axum::http::Uri,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Reply {
    let f = fields(q, &body)?;
    model_name(&f)?;
    let route = uri.path().trim_start_matches(&format!("{UC}/")).to_string();
    oss(&local, method, &route, Value::Object(f)).await?;
    ok(json!({}))
}

// ---- model versions ---------------------------------------------------------------------

async fn create_version(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let name = model_name(&f)?;
    let mut req = json!({"name": name, "source": text(&f, "source")?});
    for k in ["run_id", "description", "tags", "model_id"] {
        if let Some(v) = f.get(k) {
            req[k] = v.clone();
        }
    }
    let v = oss(&local, Method::POST, "model-versions/create", req).await?;
    let mv = v["model_version"].clone();
    let version = mv["version"].as_str().map(str::to_string).unwrap_or_else(|| mv["version"].to_string());
    // Awaiting its files until `finalize`; a retried number starts empty.
    let marker = super::uc_artifacts::pending_marker(&local, &name, &version);
    let dir = super::uc_artifacts::version_dir(&local, &name, &version);
    let _ = std::fs::remove_dir_all(&dir);
    let made = marker
        .parent()
        .map(std::fs::create_dir_all)
        .unwrap_or(Ok(()))
        .and_then(|_| std::fs::write(&marker, b""))
        .and_then(|_| std::fs::create_dir_all(&dir));
    made.map_err(|e| super::reply::io("INTERNAL_ERROR", "could not prepare the version's storage", &e))?;
    ok(json!({"model_version": uc_version(&local, mv)}))
}

async fn finalize_version(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let (name, version) = (model_name(&f)?, version_of(&f)?);
    let v = oss(&local, Method::GET, "model-versions/get", json!({"name": name, "version": version})).await?;
    super::uc_artifacts::forget(&local, &super::uc_artifacts::pending_marker(&local, &name, &version));
    ok(json!({"model_version": uc_version(&local, v["model_version"].clone())}))
}

/// Default storage: the client then asks for presigned URLs (`uc_artifacts`).
async fn credentials(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let (name, version) = (model_name(&f)?, version_of(&f)?);
    oss(&local, Method::GET, "model-versions/get", json!({"name": name, "version": version})).await?;
    let write = f.get("operation").and_then(Value::as_str) == Some("MODEL_VERSION_OPERATION_READ_WRITE");
    if write && !super::uc_artifacts::is_pending(&local, &name, &version) {
        return Err(api(
            403,
            "PERMISSION_DENIED",
            format!("Version {version} of {name} is finalized: its files cannot be written."),
        ));
    }
    let until = SystemTime::now() + Duration::from_secs(15 * 60);
    let ms = until.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    // Both modes: clients that know default storage move the files through
    // presigned URLs (uc_artifacts); older ones (DBR 15.4's MLflow) through
    // the S3 store with these temporary credentials (uc_s3).
    let dir = super::uc_artifacts::version_dir(&local, &name, &version);
    let session = super::uc_artifacts::new_grant(&local, dir, write);
    let aws = json!({
        "access_key_id": format!("ASIA{}", super::util::random_hex(8).to_uppercase()),
        "secret_access_key": super::util::random_hex(20),
        "session_token": session,
    });
    ok(json!({"credentials": {"storage_mode": "DEFAULT_STORAGE", "aws_temp_credentials": aws, "expiration_time": ms}}))
}

async fn get_version(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let (name, version) = (model_name(&f)?, version_of(&f)?);
    let v = oss(&local, Method::GET, "model-versions/get", json!({"name": name, "version": version})).await?;
    ok(json!({"model_version": uc_version(&local, v["model_version"].clone())}))
}

async fn download_uri(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let (name, version) = (model_name(&f)?, version_of(&f)?);
    oss(&local, Method::GET, "model-versions/get", json!({"name": name, "version": version})).await?;
    ok(json!({"artifact_uri": super::uc_s3::storage_location(&name, &version)}))
}

async fn search_versions(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let mut req = json!({"max_results": f.get("max_results").cloned().unwrap_or(json!("10000"))});
    for k in ["filter", "page_token"] {
        if let Some(v) = f.get(k) {
            req[k] = v.clone();
        }
    }
    let v = oss(&local, Method::GET, "model-versions/search", req).await?;
    let versions: Vec<Value> = v["model_versions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| three_level(m["name"].as_str().unwrap_or_default()))
                .map(|m| uc_version(&local, m.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut out = json!({"model_versions": versions});
    if let Some(t) = v.get("next_page_token") {
        out["next_page_token"] = t.clone();
    }
    ok(out)
}

async fn update_version(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let (name, version) = (model_name(&f)?, version_of(&f)?);
    let d = f.get("description").cloned().unwrap_or(json!(""));
    let v = oss(&local, Method::PATCH, "model-versions/update", json!({"name": name, "version": version, "description": d}))
        .await?;
    ok(json!({"model_version": uc_version(&local, v["model_version"].clone())}))
}

async fn delete_version(State(Shared(local)): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    let f = fields(q, &body)?;
    let (name, version) = (model_name(&f)?, version_of(&f)?);
    oss(&local, Method::DELETE, "model-versions/delete", json!({"name": name, "version": version})).await?;
    super::uc_artifacts::forget(&local, &super::uc_artifacts::version_dir(&local, &name, &version));
    super::uc_artifacts::forget(&local, &super::uc_artifacts::pending_marker(&local, &name, &version));
    ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_three_plain_levels() {
        let f = |n: &str| {
            let mut m = Map::new();
            m.insert("name".into(), json!(n));
            model_name(&m).is_ok()
        };
        assert!(f("main.s.m"));
        assert!(!f("s.m"));
        assert!(!f("main.s.m.x"));
        assert!(!f("main.../x"));
        assert!(!f(&format!("main.s.{}", "a".repeat(256))));
    }

    #[test]
    fn fields_merge_query_and_body() {
        let m = fields(Some("name=main.s.m&version=3".into()), br#"{"alias": "champion"}"#).ok().unwrap_or_default();
        assert_eq!(m["name"], "main.s.m");
        assert_eq!(m["alias"], "champion");
        assert_eq!(version_of(&m).ok().as_deref(), Some("3"));
    }
}
