//! Bindings for the local cluster: start, stop, and calls to its `/_local/`
//! control routes over real HTTP (so the routes R tests use are the ones other
//! clients see).

use std::sync::OnceLock;

use extendr_api::prelude::*;

use super::convert::{guard, json_to_robj, opt_string};
use super::handles::Registry;
use crate::error::{Error, Result};
use crate::local::{Input, LocalCluster, LocalOptions, OptionSpec, OPTIONS};

pub static LOCALS: Registry<LocalCluster> = Registry::new("local cluster");

/// One R value as an option's input: a single string or number.
fn input(name: &str, v: &Robj) -> Result<Option<Input>> {
    if v.is_null() {
        return Ok(None);
    }
    if v.len() == 1 && !v.is_na() {
        if let Some(s) = v.as_str() {
            return Ok(Some(Input::Text(s.to_string())));
        }
        if let Some(x) = v.as_real().or_else(|| v.as_integer().map(f64::from)) {
            return Ok(Some(Input::Number(x)));
        }
    }
    Err(Error::input(format!("`{name}` must be a single string or number")))
}

/// Options from a named R list, checked by the option table.
fn options(opts: &Robj) -> Result<LocalOptions> {
    let list = opts.as_list().ok_or_else(|| Error::input("local cluster options must be a named list"))?;
    let mut pairs = Vec::new();
    for (name, v) in list.iter() {
        if let Some(i) = input(name, &v)? {
            pairs.push((name.to_string(), i));
        }
    }
    LocalOptions::from_pairs(pairs)
}

/// The local cluster's option table (name, flag, kind, default, help,
/// accepts), for R's checks and documentation.
/// @noRd
#[extendr]
fn rust_local_option_table() -> Robj {
    guard(|| {
        let col = |f: fn(&OptionSpec) -> String| -> Robj { OPTIONS.iter().map(f).collect::<Vec<_>>().into() };
        Ok(List::from_pairs([
            ("name", col(|s| s.name.to_string())),
            ("flag", col(|s| s.flag())),
            ("default", col(|s| s.default.to_string())),
            ("help", col(|s| s.help.to_string())),
            ("accepts", col(|s| s.accepts())),
        ])
        .into())
    })
}

/// Check local cluster options without starting anything; TRUE, or the error.
/// @noRd
#[extendr]
fn rust_local_check_options(opts: Robj) -> Robj {
    guard(|| options(&opts).map(|_| Robj::from(true)))
}

/// Start a local cluster; its handle id and what R shows about it.
/// @noRd
#[extendr]
fn rust_local_start(opts: Robj) -> Robj {
    guard(|| {
        let cluster = LocalCluster::start(options(&opts)?)?;
        let warning = cluster.python_warning().map(Robj::from).unwrap_or_else(|| Robj::from(()));
        let paths_missing = cluster.paths_missing().map(Robj::from).unwrap_or_else(|| Robj::from(()));
        let info = List::from_pairs([
            ("url", Robj::from(cluster.url())),
            ("token", Robj::from(cluster.token())),
            ("cluster_id", Robj::from(cluster.cluster_id())),
            ("state_dir", Robj::from(cluster.state_dir().to_string_lossy().as_ref())),
            ("python", Robj::from(cluster.python())),
            ("rpy2", Robj::from(cluster.rpy2_available())),
            ("warning", warning),
            ("runtime", cluster.runtime().0.map(Robj::from).unwrap_or_else(|| Robj::from(()))),
            ("spark_version", Robj::from(cluster.runtime().1)),
            ("paths_missing", paths_missing),
        ]);
        let id = LOCALS.insert(cluster);
        Ok(List::from_pairs([("id", Robj::from(id)), ("info", info.into())]).into())
    })
}

/// Stop a local cluster; FALSE when it was already stopped.
/// @noRd
#[extendr]
fn rust_local_stop(id: i32) -> Robj {
    guard(|| {
        let found = LOCALS.remove(id);
        if let Some(c) = &found {
            c.stop();
        }
        Ok(Robj::from(found.is_some()))
    })
}

fn client() -> Result<&'static reqwest::Client> {
    static CLIENT: OnceLock<std::result::Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::internal(format!("could not build an HTTP client: {e}")))
}

/// Call a control route (`GET /_local/stats`, `POST /_local/faults`, ...)
/// with a JSON body (text, or NULL); the parsed JSON answer.
/// @noRd
#[extendr]
fn rust_local_control(id: i32, method: &str, path: &str, body: Robj) -> Robj {
    guard(|| {
        let cluster = LOCALS.get(id)?;
        if !path.starts_with("/_local/") {
            return Err(Error::input(format!("{path} is not a control route")));
        }
        let url = format!("{}{path}", cluster.url());
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::input(format!("bad HTTP method {method:?}")))?;
        let body = opt_string(&body);
        let token = cluster.token().to_string();
        let (status, text) = crate::runtime::block_on(async move {
            let mut req = client()?.request(method, &url).bearer_auth(token);
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b);
            }
            let resp = req.send().await.map_err(|e| {
                crate::local::local_error(format!("the local cluster did not answer {url}: {e}"))
            })?;
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            Ok::<_, Error>((status, text))
        })??;
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        if status >= 400 {
            let msg = value["message"].as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
            let mut e = crate::local::local_error(format!("control route {path} failed: {msg}"));
            e.status = Some(status);
            return Err(e);
        }
        Ok(json_to_robj(&value))
    })
}

extendr_module! {
    mod local;
    fn rust_local_start;
    fn rust_local_stop;
    fn rust_local_control;
    fn rust_local_option_table;
    fn rust_local_check_options;
}
