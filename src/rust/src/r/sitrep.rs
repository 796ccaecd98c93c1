//! Bindings for `dbx_sitrep()`'s identity and grants checks (each starts a job
//! bounded by `timeout`, seconds or NULL, whose value is the endpoint's JSON
//! answer) and for the live suite's clean-up (a staging directory removed with
//! everything in it). No logic here beyond argument conversion.

use std::time::Duration;

use extendr_api::prelude::*;

use super::convert::{guard, opt_f64};
use crate::api::access::{self, Securable};
use crate::error::Error;
use crate::jobs::{self, Output};

fn limit(timeout: &Robj) -> crate::Result<Option<Duration>> {
    match opt_f64(timeout) {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(Duration::from_secs_f64(v))),
        Some(v) => Err(Error::input(format!("`timeout` must be a non-negative number of seconds, not {v}"))),
    }
}

/// Start asking who the connection's credentials belong to (SCIM `Me`).
/// @noRd
#[extendr]
fn rust_current_user_start(conn: Robj, timeout: Robj) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let total = limit(&timeout)?;
        let job = jobs::spawn(move |ctl| async move {
            let work = ctl.run(access::current_user(&session.transport));
            crate::deadline::scope(total, work).await.map(Output::Json)
        })?;
        Ok(Robj::from(job))
    })
}

/// Start reading a catalog's or schema's details (`what = "details"`) or the
/// effective privileges on it (`what = "permissions"`).
/// @noRd
#[extendr]
fn rust_uc_read_start(conn: Robj, what: &str, securable_type: &str, full_name: &str, timeout: Robj) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let kind = Securable::parse(securable_type)?;
        let permissions = match what {
            "details" => false,
            "permissions" => true,
            _ => return Err(Error::input(format!("unknown read `{what}`: expected \"details\" or \"permissions\""))),
        };
        let name = full_name.to_string();
        let total = limit(&timeout)?;
        let job = jobs::spawn(move |ctl| async move {
            let t = &session.transport;
            let work = async {
                if permissions {
                    access::effective_permissions(t, kind, &name).await
                } else {
                    access::details(t, kind, &name).await
                }
            };
            crate::deadline::scope(total, ctl.run(work)).await.map(Output::Json)
        })?;
        Ok(Robj::from(job))
    })
}

/// Start removing a remote directory (or file) and everything in it.
/// @noRd
#[extendr]
fn rust_remove_tree_start(conn: Robj, path: &str) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let loc = crate::location::Location::parse(path)?;
        let job = jobs::spawn(move |ctl| async move {
            ctl.run(crate::staging::remove_tree(&session, &loc)).await.map(|_| Output::Json(serde_json::json!(true)))
        })?;
        Ok(Robj::from(job))
    })
}

extendr_module! {
    mod sitrep;
    fn rust_remove_tree_start;
    fn rust_current_user_start;
    fn rust_uc_read_start;
}
