//! dbrxr: the Rust core of the dbrxr R package.
//!
//! Layers (each calls only the one below it):
//! - [`config`] + [`auth`]: resolve a connection like the Databricks SDKs, hold credentials;
//! - [`retry`]: the one retry policy and loop (below both `auth` and `http`);
//! - [`http`]: the transport: one attempt at a time, through [`retry`];
//! - [`api`]: typed wrappers of the REST endpoints (clusters, contexts, commands, dbfs, files);
//! - [`control`] + [`poll`] + [`deadline`]: cancellation, progress, polling schedules and
//!   the call's deadline, shared by the layers that wait;
//! - [`session`]: cluster ensure-running, the context of a connection, command run/poll/cancel;
//! - [`location`] + [`staging`]: where staged bytes live, and moving bytes to and from DBFS or a Volume under content hashes;
//! - [`local`]: the embedded Databricks-compatible local cluster;
//! - `r` (feature `r`): thin extendr bindings, errors returned as data.

pub mod api;
pub mod auth;
pub mod b64;
pub mod config;
pub mod control;
pub mod deadline;
pub mod error;
pub mod http;
pub mod jobs;
pub mod local;
pub mod location;
pub mod poll;
pub mod protocol;
pub mod redact;
pub mod retry;
pub mod runtime;
pub mod session;
pub mod staging;

#[cfg(feature = "r")]
pub mod r;

pub use error::{Error, ErrorKind, Result};
