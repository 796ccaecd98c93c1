//! Bindings for Databricks jobs: one entry point for the Jobs operations
//! (a Rust job R waits on, see `api::jobs::call`) and the schedule check the
//! R verbs run before any request.

use extendr_api::prelude::*;
use serde_json::{Map, Number, Value};

use super::convert::guard;
use crate::error::Error;
use crate::jobs::{self, Output};

/// An R value as JSON: a named list is an object, an unnamed list an array,
/// a length-1 atomic a scalar (longer ones arrays), NULL and NA null. Whole
/// doubles become integers (run and job ids exceed R's integers).
fn to_json(x: &Robj) -> Value {
    if x.is_null() {
        return Value::Null;
    }
    if let Some(list) = x.as_list() {
        let named = x.names().is_some();
        if named {
            let mut m = Map::new();
            for (k, v) in list.iter() {
                m.insert(k.to_string(), to_json(&v));
            }
            return Value::Object(m);
        }
        return Value::Array(list.values().map(|v| to_json(&v)).collect());
    }
    let items: Vec<Value> = if let Some(v) = x.as_str_vector() {
        v.iter().map(|s| if s.is_na() { Value::Null } else { Value::String(s.to_string()) }).collect()
    } else if let Some(v) = x.as_logical_slice() {
        v.iter().map(|b| if b.is_na() { Value::Null } else { Value::Bool(b.is_true()) }).collect()
    } else if let Some(v) = x.as_integer_slice() {
        v.iter().map(|i| if *i == i32::MIN { Value::Null } else { Value::from(*i) }).collect()
    } else if let Some(v) = x.as_real_slice() {
        v.iter()
            .map(|f| {
                if f.is_nan() {
                    Value::Null
                } else if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    Value::from(*f as i64)
                } else {
                    Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null)
                }
            })
            .collect()
    } else {
        return Value::Null;
    };
    if items.len() == 1 && x.get_attrib("class").is_none() {
        items.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(items)
    }
}

/// Start a Jobs operation (`submit`, `get_run`, `wait_run`, ...) with its
/// arguments (a named list); the job's value is the answer as R lists.
/// @noRd
#[extendr]
fn rust_jobs_start(conn: Robj, op: &str, args: Robj) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let op = op.to_string();
        let args = to_json(&args);
        let job = jobs::spawn(move |ctl| async move {
            crate::api::jobs::call(&session.transport, &op, args, &ctl).await.map(Output::Json)
        })?;
        Ok(Robj::from(job))
    })
}

/// Stage the files a job's task runs (the runner, the modules it imports,
/// the dispatcher) under `<staging>/jobs/code/<hash of them all>/<name>`:
/// named as Python needs them, content-addressed as a set, and sent only
/// when missing. The job's value: the directory and each file's paths.
/// @noRd
#[extendr]
fn rust_jobs_stage_code(conn: Robj, names: Vec<String>, files: List) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let mut parts: Vec<(String, bytes::Bytes)> = Vec::with_capacity(names.len());
        for (name, (_, raw)) in names.iter().zip(files.iter()) {
            let b = raw.as_raw_slice().ok_or_else(|| Error::input("code files must be raw vectors"))?;
            parts.push((name.clone(), bytes::Bytes::copy_from_slice(b)));
        }
        let job = jobs::spawn(move |ctl| async move {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            for (n, b) in &parts {
                h.update((n.len() as u64).to_le_bytes());
                h.update(n.as_bytes());
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
            let hash = hex::encode(h.finalize());
            let dir = session.staging.root.join(&format!("jobs/code/{}", &hash[..32]));
            let mut out = Map::new();
            for (name, b) in parts {
                let loc = dir.join(&name);
                let size = b.len() as u64;
                if ctl.run(crate::staging::size_at(&session, &loc)).await? != Some(size) {
                    let api = loc.api_path();
                    crate::staging::stage_at(&session, &api, crate::staging::Source::Bytes(b), true, &ctl).await?;
                }
                out.insert(name, serde_json::json!({"path": loc.api_path(), "cluster_path": loc.cluster_path()}));
            }
            Ok(Output::Json(serde_json::json!({"dir": dir.api_path(), "files": out})))
        })?;
        Ok(Robj::from(job))
    })
}

/// Check a Quartz cron expression and time zone as the service would,
/// without any request: TRUE, or an input error saying what is wrong.
/// @noRd
#[extendr]
fn rust_cron_check(expr: &str, timezone: &str) -> Robj {
    guard(|| {
        crate::local::jobs::check_schedule(expr, timezone)
            .map(|_| Robj::from(true))
            .map_err(|m| Error::input(m).field("schedule", expr))
    })
}

extendr_module! {
    mod jobs;
    fn rust_jobs_start;
    fn rust_jobs_stage_code;
    fn rust_cron_check;
}
