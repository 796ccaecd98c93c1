//! Bindings for tests only: the generated commands and their answers, so
//! tests can run the bootstrap outside a cluster, and the debug counter of
//! calls from R into Rust.

use extendr_api::prelude::*;

use super::convert::{guard, json_to_robj, CALLS, WAIT_CALLS};
use super::protocol::sources_from;
use crate::protocol;

/// The Python of a bootstrap command (tests run it outside a cluster).
/// @noRd
#[extendr]
fn rust_bootstrap_code(sources: List, install_rpy2: bool) -> Robj {
    guard(|| Ok(Robj::from(protocol::bootstrap_code(&sources_from(&sources, install_rpy2)?))))
}

/// The Python of one request command for `target`: `req` inline (raw) or
/// `paths` of its staged parts; the answer goes to `result_path` when larger
/// than `inline_max` (tests run it outside a cluster).
/// @noRd
#[extendr]
fn rust_call_code(request_id: &str, target: &str, sources: List, req: Robj, paths: Robj, result_path: &str, inline_max: f64) -> Robj {
    guard(|| {
        let parts: Vec<String> = paths.as_str_vector().map(|v| v.iter().map(|s| s.to_string()).collect()).unwrap_or_default();
        let src = sources_from(&sources, false)?;
        let code = protocol::call_code_for(request_id, target, &src, req.as_raw_slice().unwrap_or(&[]), &parts, result_path, inline_max as usize)?;
        Ok(Robj::from(code))
    })
}

/// The dbrxr marker of a command's output: `list(kind, payload, fields)`
/// (tests of the bootstrap read commands' output with it).
/// @noRd
#[extendr]
fn rust_parse_marker(text: &str) -> Robj {
    guard(|| {
        let (kind, payload) = protocol::parse_marker(text)?;
        let fields = json_to_robj(&serde_json::Value::Object(protocol::parse_fields(&payload)));
        Ok(List::from_pairs([("kind", Robj::from(kind)), ("payload", Robj::from(payload)), ("fields", fields)]).into())
    })
}

/// Debug counter: calls from R into Rust so far, and how many of them only
/// waited on a job. Not counted itself.
/// @noRd
#[extendr]
fn rust_debug_calls() -> Robj {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed) as f64;
    List::from_pairs([("calls", Robj::from(get(&CALLS))), ("waits", Robj::from(get(&WAIT_CALLS)))]).into()
}

extendr_module! {
    mod testing;
    fn rust_bootstrap_code;
    fn rust_call_code;
    fn rust_parse_marker;
    fn rust_debug_calls;
}
