//! Serving Endpoints API (Model Serving): create, get, list, update a
//! config, delete, and queries (`POST /serving-endpoints/<name>/invocations`,
//! MLflow's scoring body formats, answered `{"predictions": ...}`).
//!
//! Retries: reads and queries (scoring has no side effect) are resent after
//! an ambiguous failure; create, update and delete are not (a resent create
//! would answer RESOURCE_ALREADY_EXISTS for the endpoint the first one made).

use reqwest::Method;
use serde_json::{json, Value};

use crate::control::Control;
use crate::error::{Error, Result};
use crate::http::{encode_path, Replay, Request, Transport};

const V: &str = "/api/2.0/serving-endpoints";

/// An unknown endpoint is the caller's error: the R side classes it.
fn not_found(e: Error, name: &str) -> Error {
    if e.status == Some(404) && e.error_code.as_deref() != Some("ENDPOINT_NOT_FOUND") {
        e.field("not_found", "endpoint").field("endpoint", name)
    } else {
        e
    }
}

fn name_arg(args: &Value) -> Result<String> {
    match args["name"].as_str() {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => Err(Error::internal("a serving request needs the endpoint's name")),
    }
}

/// The Unity Catalog registry's alias route (as MLflow's `databricks-uc`
/// client calls it): the version behind `alias` (`alias_get`), or set it
/// (`alias_set`, with `version`). What serving a `models:/name@alias` needs.
const ALIAS: &str = "/api/2.0/mlflow/unity-catalog/registered-models/alias";

fn text(args: &Value, key: &str) -> String {
    args[key].as_str().unwrap_or_default().to_string()
}

/// One operation: `create` (body), `get`, `list`, `update_config` (name,
/// body), `delete`, `query` (name, body), `alias_get` / `alias_set` (model,
/// alias, version).
pub async fn call(t: &Transport, op: &str, args: Value, ctl: &Control) -> Result<Value> {
    let req = match op {
        "list" => Request::get(V),
        "create" => Request::post(V).json(&args["body"])?.replay(Replay::Never),
        "get" => Request::get(format!("{V}/{}", encode_path(&name_arg(&args)?))),
        "update_config" => Request::new(Method::PUT, format!("{V}/{}/config", encode_path(&name_arg(&args)?)))
            .json(&args["body"])?
            .replay(Replay::Never),
        "delete" => Request::new(Method::DELETE, format!("{V}/{}", encode_path(&name_arg(&args)?))).replay(Replay::Never),
        "query" => Request::post(format!("/serving-endpoints/{}/invocations", encode_path(&name_arg(&args)?)))
            .json(&args["body"])?,
        "alias_get" => Request::get(ALIAS).query("name", text(&args, "model")).query("alias", text(&args, "alias")),
        "alias_set" => Request::post(ALIAS).json(&json!({"name": text(&args, "model"), "alias": text(&args, "alias"),
                                                         "version": text(&args, "version")}))?,
        _ => return Err(Error::internal(format!("unknown serving operation {op:?}"))),
    };
    let name = args["name"].as_str().unwrap_or_default().to_string();
    let v: Value = if op.starts_with("alias") {
        ctl.run(t.json(req)).await.map_err(|e| if e.status == Some(404) { e.field("not_found", "model_alias") } else { e })?
    } else {
        ctl.run(t.json(req)).await.map_err(|e| not_found(e, &name))?
    };
    Ok(if op == "list" { v.get("endpoints").cloned().unwrap_or(json!([])) } else { v })
}
