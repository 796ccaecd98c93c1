//! The boundary: every binding returns `list(ok = TRUE, value = ...)` or
//! `list(ok = FALSE, error = list(...))`. Panics are caught here and become
//! internal errors; nothing unwinds into R. `R/conditions.R` raises the error.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use extendr_api::prelude::*;

use crate::error::{Error as DbxError, Result as DbxResult};

/// Calls from R into Rust through [`guard`], and those of them that only
/// waited on a job: a debug counter, so tests can check how often the R side
/// crosses into Rust for one operation.
pub static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static WAIT_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Run a binding body, turning its result (or a panic) into the tagged list.
pub fn guard<F>(f: F) -> Robj
where
    F: FnOnce() -> DbxResult<Robj>,
{
    CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => ok(value),
        Ok(Err(e)) => err(&e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            err(&DbxError::internal(format!("dbrxr's Rust core failed unexpectedly: {what}"))
                .hint("this is a bug in dbrxr; please report it with the code that triggered it"))
        }
    }
}

fn ok(value: Robj) -> Robj {
    List::from_pairs([("ok", Robj::from(true)), ("value", value)]).into()
}

fn err(e: &DbxError) -> Robj {
    let opt_str = |o: &Option<String>| -> Robj {
        match o {
            Some(s) => Robj::from(s.as_str()),
            None => Robj::from(()),
        }
    };
    let fields: Vec<(&str, Robj)> = e
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), Robj::from(v.as_str())))
        .collect();
    let error = List::from_pairs([
        ("class", Robj::from(e.kind.r_class())),
        ("message", Robj::from(e.message.as_str())),
        ("hints", Robj::from(e.hints.clone())),
        ("status", e.status.map(|s| Robj::from(s as i32)).unwrap_or_else(|| Robj::from(()))),
        ("error_code", opt_str(&e.error_code)),
        ("request_id", opt_str(&e.request_id)),
        ("attempts", e.attempts.map(|a| Robj::from(a as i32)).unwrap_or_else(|| Robj::from(()))),
        ("fields", List::from_pairs(fields).into()),
    ]);
    List::from_pairs([("ok", Robj::from(false)), ("error", error.into())]).into()
}

/// A JSON value as an R value: objects → named lists, arrays → unnamed lists,
/// numbers → doubles, null → NULL. R simplifies where it knows the shape.
pub fn json_to_robj(v: &serde_json::Value) -> Robj {
    use serde_json::Value;
    match v {
        Value::Null => Robj::from(()),
        Value::Bool(b) => Robj::from(*b),
        Value::Number(n) => Robj::from(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Robj::from(s.as_str()),
        Value::Array(a) => List::from_values(a.iter().map(json_to_robj)).into(),
        Value::Object(o) => {
            List::from_pairs(o.iter().map(|(k, v)| (k.as_str(), json_to_robj(v)))).into()
        }
    }
}

/// A named character vector from R (`c(host = "...")`) as a map; `NULL` or
/// `NA` entries are skipped.
pub fn named_strings(x: &Robj) -> DbxResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if x.is_null() || x.len() == 0 {
        return Ok(out);
    }
    let values = x
        .as_string_vector()
        .ok_or_else(|| DbxError::input("expected a named character vector"))?;
    let names: Vec<String> = match x.names() {
        Some(n) => n.map(|s| s.to_string()).collect(),
        None => return Err(DbxError::input("expected a named character vector")),
    };
    out.extend(names.into_iter().zip(values));
    Ok(out)
}

/// An optional string argument: `NULL`/`NA` → `None`.
pub fn opt_string(x: &Robj) -> Option<String> {
    if x.is_null() || x.is_na() {
        return None;
    }
    x.as_str().map(str::to_string)
}

/// An optional number argument: `NULL`/`NA` → `None`.
pub fn opt_f64(x: &Robj) -> Option<f64> {
    if x.is_null() || x.is_na() {
        return None;
    }
    x.as_real().or_else(|| x.as_integer().map(f64::from))
}
