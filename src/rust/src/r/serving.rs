//! Bindings for Model Serving: the Serving Endpoints operations and queries
//! as Rust jobs R waits on (see `api::serving::call`).

use extendr_api::prelude::*;
use serde_json::{json, Number, Value};

use super::convert::guard;
use crate::error::Error;
use crate::jobs::{self, Output};

/// Start a Serving Endpoints operation on endpoint `name`: `list`, `get`,
/// `delete`, or `create` / `update_config` of a config serving
/// `entity_name` version `entity_version`.
/// @noRd
#[extendr]
fn rust_serving_start(conn: Robj, op: &str, name: &str, entity_name: &str, entity_version: &str,
                      workload_size: &str, scale_to_zero: bool) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let config = json!({"served_entities": [{
            "entity_name": entity_name, "entity_version": entity_version,
            "workload_size": workload_size, "scale_to_zero_enabled": scale_to_zero,
        }]});
        let body = if op == "create" { json!({"name": name, "config": config}) } else { config };
        let (op, args) = (op.to_string(), json!({"name": name, "body": body}));
        let job = jobs::spawn(move |ctl| async move {
            crate::api::serving::call(&session.transport, &op, args, &ctl).await.map(Output::Json)
        })?;
        Ok(Robj::from(job))
    })
}

/// The registry's alias route: the model version behind `alias` of
/// `model` (`version` empty), or point `alias` at `version`. The job's
/// value is the answer (`model_version` for a lookup).
/// @noRd
#[extendr]
fn rust_registry_alias(conn: Robj, model: &str, alias: &str, version: &str) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let op = if version.is_empty() { "alias_get" } else { "alias_set" };
        let args = json!({"model": model, "alias": alias, "version": version});
        let job = jobs::spawn(move |ctl| async move {
            crate::api::serving::call(&session.transport, op, args, &ctl).await.map(Output::Json)
        })?;
        Ok(Robj::from(job))
    })
}

/// Query endpoint `name` with a data frame's columns (a named list of
/// atomic vectors of equal length: doubles, integers, logicals, strings),
/// sent as MLflow's `dataframe_split` (doubles exact: shortest round-trip
/// digits; NA as null). The job's value is the answer.
/// @noRd
#[extendr]
fn rust_serving_query(conn: Robj, name: &str, columns: List) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let names: Vec<String> = columns.names().map(|n| n.map(str::to_string).collect()).unwrap_or_default();
        let cols: Vec<Vec<Value>> = columns.values().map(|c| column(&c)).collect::<Result<_, Error>>()?;
        let n = cols.first().map(Vec::len).unwrap_or(0);
        if names.len() != cols.len() || cols.iter().any(|c| c.len() != n) {
            return Err(Error::input("the query's columns must be named and of equal length"));
        }
        let data: Vec<Value> = (0..n).map(|i| Value::Array(cols.iter().map(|c| c[i].clone()).collect())).collect();
        let args = json!({"name": name, "body": {"dataframe_split": {"columns": names, "data": data}}});
        let job = jobs::spawn(move |ctl| async move {
            crate::api::serving::call(&session.transport, "query", args, &ctl).await.map(Output::Json)
        })?;
        Ok(Robj::from(job))
    })
}

fn column(x: &Robj) -> Result<Vec<Value>, Error> {
    if let Some(v) = x.as_real_slice() {
        return Ok(v.iter().map(|f| Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null)).collect());
    }
    if let Some(v) = x.as_integer_slice() {
        return Ok(v.iter().map(|i| if *i == i32::MIN { Value::Null } else { Value::from(*i) }).collect());
    }
    if let Some(v) = x.as_logical_slice() {
        return Ok(v.iter().map(|b| if b.is_na() { Value::Null } else { Value::Bool(b.is_true()) }).collect());
    }
    if let Some(v) = x.as_str_vector() {
        return Ok(v.iter().map(|s| if s.is_na() { Value::Null } else { Value::String(s.to_string()) }).collect());
    }
    Err(Error::input("a query column must be numbers, logicals or strings"))
}

extendr_module! {
    mod serving;
    fn rust_serving_start;
    fn rust_serving_query;
    fn rust_registry_alias;
}
