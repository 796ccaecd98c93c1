//! Bindings for staging: put bytes or a file (content-addressed or at a
//! path), fetch, remove. Each starts a job; `wait.rs` waits.

use extendr_api::prelude::*;

use super::convert::{guard, opt_string};
use crate::error::Error;
use crate::jobs::{self, Output};
use crate::staging::{self, Scope, Source};

fn job_id(id: i32) -> Robj {
    Robj::from(id)
}

/// Start staging a raw vector (`x` raw) or a local file (`x` a path). With
/// `path` NULL it goes under its content hash in `scope`; else to `path`.
/// @noRd
#[extendr]
fn rust_stage_start(conn: Robj, x: Robj, scope: &str, path: Robj, overwrite: bool) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let source = match x.as_raw_slice() {
            Some(b) => Source::Bytes(bytes::Bytes::copy_from_slice(b)),
            None => match opt_string(&x) {
                Some(p) => Source::File(std::path::PathBuf::from(p)),
                None => return Err(Error::input("expected a raw vector or a file path")),
            },
        };
        let scope = Scope::parse(scope)?;
        let path = opt_string(&path);
        let job = jobs::spawn(move |ctl| async move {
            let staged = match path {
                Some(p) => staging::stage_at(&session, &p, source, overwrite, &ctl).await?,
                None => staging::stage(&session, source, scope, &ctl).await?,
            };
            Ok(Output::Json(staged.to_json()))
        })?;
        Ok(job_id(job))
    })
}

/// Start downloading `path`: into memory (a raw vector) when `dest` is NULL,
/// else atomically into the file `dest` (returns its size).
/// @noRd
#[extendr]
fn rust_fetch_start(conn: Robj, path: &str, dest: Robj) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let path = path.to_string();
        let dest = opt_string(&dest);
        let job = jobs::spawn(move |ctl| async move {
            match dest {
                None => staging::fetch(&session, &path, &ctl).await.map(Output::Bytes),
                Some(d) => staging::fetch_to_file(&session, &path, std::path::Path::new(&d), &ctl)
                    .await
                    .map(|n| Output::Json(serde_json::json!(n as f64))),
            }
        })?;
        Ok(job_id(job))
    })
}

/// Start removing a remote file.
/// @noRd
#[extendr]
fn rust_remove_start(conn: Robj, path: &str) -> Robj {
    guard(|| {
        let session = super::connect::session(&conn)?;
        let path = path.to_string();
        let job = jobs::spawn(move |ctl| async move {
            ctl.run(staging::remove(&session, &path)).await.map(|_| Output::Json(serde_json::json!(true)))
        })?;
        Ok(job_id(job))
    })
}

extendr_module! {
    mod staging;
    fn rust_stage_start;
    fn rust_fetch_start;
    fn rust_remove_start;
}
