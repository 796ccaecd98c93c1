//! Bindings for connections: resolve configuration, open and close a session.
//!
//! A connection is one Rust object, [`Connection`] (the session and its
//! protocol state), behind an extendr external pointer that R's garbage
//! collector owns: no process-wide table of sessions. `dbx_disconnect()`
//! closes it (destroys the context, removes staged files); the collector
//! frees it.

use std::sync::{Arc, Mutex};

use extendr_api::prelude::*;

use super::convert::{guard, named_strings};
use crate::config;
use crate::error::{Error, Result};
use crate::protocol;
use crate::session::Session;

/// One connection: its session and protocol state, until closed.
pub struct Connection {
    open: Mutex<Option<(Arc<Session>, Arc<protocol::State>)>>,
}

impl Connection {
    fn new(session: Session) -> Connection {
        Connection { open: Mutex::new(Some((Arc::new(session), Arc::new(protocol::State::default())))) }
    }
    fn parts(&self) -> Result<(Arc<Session>, Arc<protocol::State>)> {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| {
            Error::input("this connection has been closed")
                .hint("create a new one (e.g. with `dbx_connect()` or `local_cluster()`)")
        })
    }
    fn take(&self) -> Option<(Arc<Session>, Arc<protocol::State>)> {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

fn handle(x: &Robj) -> Result<&ExternalPtr<Connection>> {
    <&ExternalPtr<Connection>>::try_from(x).map_err(|_| {
        Error::input("this is not a dbrxr connection handle").hint("pass the `dbx_connection` itself (`conn = conn`)")
    })
}

/// The session behind R's connection handle.
pub fn session(x: &Robj) -> Result<Arc<Session>> {
    Ok(handle(x)?.try_addr().map_err(|_| Error::input("this connection handle is empty"))?.parts()?.0)
}

/// The session and protocol state behind R's connection handle.
pub fn session_and_protocol(x: &Robj) -> Result<(Arc<Session>, Arc<protocol::State>)> {
    handle(x)?.try_addr().map_err(|_| Error::input("this connection handle is empty"))?.parts()
}

fn open(cfg: config::Config) -> Result<Robj> {
    let info = describe(&cfg);
    let ptr: Robj = ExternalPtr::new(Connection::new(Session::new(cfg)?)).into();
    Ok(List::from_pairs([("handle", ptr), ("info", info)]).into())
}

/// Resolve configuration (arguments → env → profile → legacy env) and open a
/// lazy session. Returns the handle and a description without secrets.
/// @noRd
#[extendr]
fn rust_connect(explicit: Robj) -> Robj {
    guard(|| {
        let explicit = named_strings(&explicit)?;
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let env = |k: &str| std::env::var(k).ok();
        open(config::resolve(&explicit, &env, home.as_deref())?)
    })
}

/// Open another lazy session with the configuration of `conn` (same host,
/// credentials, cluster and staging): its own execution context, e.g. one
/// per worker of the future backend. Secrets stay in Rust.
/// @noRd
#[extendr]
fn rust_connect_clone(conn: Robj) -> Robj {
    guard(|| open(session(&conn)?.config.clone()))
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

/// Close a connection: destroy its execution context, remove its staged
/// temporary files (bounded in time, errors ignored). Closing twice is fine.
/// @noRd
#[extendr]
fn rust_session_close(conn: Robj) -> Robj {
    guard(|| {
        let taken = handle(&conn)?.try_addr().ok().and_then(Connection::take);
        if let Some((session, _)) = taken {
            crate::runtime::block_on(crate::protocol::close(&session))?;
        }
        Ok(Robj::from(true))
    })
}

/// Session facts R needs: the current context id (NULL before the first
/// command), the staging root, the session id and its staging directory
/// (removed when the session closes).
/// @noRd
#[extendr]
fn rust_session_info(conn: Robj) -> Robj {
    guard(|| {
        let s = session(&conn)?;
        let ctx = s.context_id().map(Robj::from).unwrap_or_else(|| Robj::from(()));
        // Whoever learns the session directory may have the cluster write there.
        let dir = crate::staging::session_dir(&s);
        Ok(List::from_pairs([
            ("context_id", ctx),
            ("session_id", Robj::from(s.id.as_str())),
            ("staging", Robj::from(s.staging.root.api_path())),
            ("session_dir", Robj::from(dir.api_path())),
            ("session_cluster_dir", Robj::from(dir.cluster_path())),
        ])
        .into())
    })
}

/// The environment variables another process needs to authenticate as this
/// connection does (secrets included: the caller asked for them).
#[extendr]
fn rust_client_env(conn: Robj) -> Robj {
    guard(|| {
        let s = session(&conn)?;
        let env = s.credentials.client_env();
        Ok(List::from_pairs(env.into_iter().map(|(k, v)| (k, Robj::from(v)))).into())
    })
}

extendr_module! {
    mod connect;
    fn rust_client_env;
    fn rust_connect;
    fn rust_connect_clone;
    fn rust_session_close;
    fn rust_session_info;
}
