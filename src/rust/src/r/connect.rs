//! Bindings for connections: resolve configuration, open and close a session.

use extendr_api::prelude::*;

use super::convert::{guard, named_strings};
use super::handles::Registry;
use crate::config;
use crate::session::Session;

pub static SESSIONS: Registry<Session> = Registry::new("connection");

/// Resolve configuration (arguments → env → profile → legacy env) and open a
/// lazy session. Returns the handle id and a description without secrets.
/// @noRd
#[extendr]
fn rust_connect(explicit: Robj) -> Robj {
    guard(|| {
        let explicit = named_strings(&explicit)?;
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let env = |k: &str| std::env::var(k).ok();
        let cfg = config::resolve(&explicit, &env, home.as_deref())?;
        let info = describe(&cfg);
        let id = SESSIONS.insert(Session::new(cfg)?);
        Ok(List::from_pairs([("id", Robj::from(id)), ("info", info)]).into())
    })
}

/// Open another lazy session with the configuration of session `id` (same
/// host, credentials, cluster and staging): its own execution context, e.g.
/// one per worker of the future backend. Secrets stay in Rust.
/// @noRd
#[extendr]
fn rust_connect_clone(id: i32) -> Robj {
    guard(|| {
        let cfg = SESSIONS.get(id)?.config.clone();
        let info = describe(&cfg);
        let id = SESSIONS.insert(Session::new(cfg)?);
        Ok(List::from_pairs([("id", Robj::from(id)), ("info", info)]).into())
    })
}

fn describe(cfg: &config::Config) -> Robj {
    let opt = |o: &Option<String>| o.as_deref().map(Robj::from).unwrap_or_else(|| Robj::from(()));
    let sources: Vec<(&str, Robj)> =
        cfg.sources.iter().map(|(k, v)| (k.as_str(), Robj::from(v.as_str()))).collect();
    List::from_pairs([
        ("host", Robj::from(cfg.host.as_str())),
        ("cluster_id", Robj::from(cfg.cluster_id.as_str())),
        ("auth_type", Robj::from(cfg.auth.auth_type())),
        ("profile", opt(&cfg.profile)),
        ("config_file", opt(&cfg.config_file)),
        ("staging", opt(&cfg.staging)),
        ("sources", List::from_pairs(sources).into()),
        ("warnings", Robj::from(cfg.warnings.iter().map(String::as_str).collect::<Vec<_>>())),
    ])
    .into()
}

/// Close a session: destroy its execution context, remove its staged
/// temporary files (bounded in time, errors ignored), forget the handle.
/// @noRd
#[extendr]
fn rust_session_close(id: i32) -> Robj {
    guard(|| {
        if let Some(session) = SESSIONS.remove(id) {
            crate::runtime::block_on(crate::protocol::close(&session))?;
        }
        Ok(Robj::from(true))
    })
}

extendr_module! {
    mod connect;
    fn rust_connect;
    fn rust_connect_clone;
    fn rust_session_close;
}
