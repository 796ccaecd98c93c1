//! Bindings for the local cluster: start, stop, and calls to its `/_local/`
//! control routes over real HTTP (so the routes R tests use are the ones other
//! clients see).

use std::sync::OnceLock;

use extendr_api::prelude::*;

use super::convert::{guard, json_to_robj, opt_f64, opt_string};
use super::handles::Registry;
use crate::error::{Error, Result};
use crate::local::{LocalCluster, LocalOptions};

pub static LOCALS: Registry<LocalCluster> = Registry::new("local cluster");

fn get<'a>(list: &'a List, name: &str) -> Option<Robj> {
    list.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

fn num<T: TryFrom<u64>>(list: &List, name: &str) -> Result<Option<T>> {
    match get(list, name).as_ref().and_then(opt_f64) {
        None => Ok(None),
        Some(x) if x >= 0.0 && x.fract() == 0.0 && x < 9.0e15 => T::try_from(x as u64)
            .map(Some)
            .map_err(|_| Error::input(format!("`{name}` is too large"))),
        Some(x) => Err(Error::input(format!("`{name}` must be a whole number >= 0, not {x}"))),
    }
}

fn options(opts: &Robj) -> Result<LocalOptions> {
    let list = opts.as_list().ok_or_else(|| Error::input("local cluster options must be a named list"))?;
    let s = |name: &str| get(&list, name).as_ref().and_then(opt_string);
    let mut o = LocalOptions::default();
    if let Some(p) = num::<u16>(&list, "port")? {
        o.port = p;
    }
    o.token = s("token");
    o.python = s("python");
    o.state_dir = s("state_dir").map(Into::into);
    if let Some(id) = s("cluster_id") {
        o.cluster_id = id;
    }
    if let Some(st) = s("cluster_state") {
        o.cluster_state = st.to_ascii_uppercase();
    }
    if let Some(m) = s("data_security_mode") {
        o.data_security_mode = m.to_ascii_uppercase();
    }
    o.readonly_staging = s("readonly_staging");
    o.client_id = s("client_id");
    o.client_secret = s("client_secret");
    if let Some(v) = num(&list, "start_delay_ms")? {
        o.start_delay_ms = v;
    }
    if let Some(v) = num(&list, "token_ttl_s")? {
        o.token_ttl_s = v;
    }
    if let Some(v) = num(&list, "max_output_chars")? {
        o.max_output_chars = v;
    }
    if let Some(v) = num(&list, "max_contexts")? {
        o.max_contexts = v;
    }
    Ok(o)
}

/// Start a local cluster; its handle id and what R shows about it.
/// @noRd
#[extendr]
fn rust_local_start(opts: Robj) -> Robj {
    guard(|| {
        let cluster = LocalCluster::start(options(&opts)?)?;
        let warning = cluster.python_warning().map(Robj::from).unwrap_or_else(|| Robj::from(()));
        let info = List::from_pairs([
            ("url", Robj::from(cluster.url())),
            ("token", Robj::from(cluster.token())),
            ("cluster_id", Robj::from(cluster.cluster_id())),
            ("state_dir", Robj::from(cluster.state_dir().to_string_lossy().as_ref())),
            ("python", Robj::from(cluster.python())),
            ("rpy2", Robj::from(cluster.rpy2_available())),
            ("warning", warning),
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
}
