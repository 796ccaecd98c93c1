//! Who the caller is, and what Unity Catalog lets them do, on a cluster that has
//! one user and enforces no permissions: SCIM `Me` answers that user (the one
//! the cluster is dedicated to), who owns every catalog and schema, and the
//! effective privileges on any securable are theirs, `ALL_PRIVILEGES`.
//! Catalogs and schemas exist as Spark's databases do (see [`schema_exists`]);
//! a missing one gets the service's 404. Names of the wrong shape get its 400.

use std::path::Path as FsPath;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::reply::{self, invalid, Reply};
use super::state::Shared;

/// The local cluster's one user (`single_user_name` of `clusters/get`).
pub const LOCAL_USER: &str = "local@dbrxr.invalid";

/// SCIM `Me` and the Unity Catalog reads `dbx_sitrep()` makes (no body, no state).
pub fn router() -> Router<Shared> {
    Router::new()
        .route("/api/2.0/preview/scim/v2/Me", get(me))
        .route("/api/2.1/unity-catalog/catalogs/{name}", get(catalog))
        .route("/api/2.1/unity-catalog/schemas/{full_name}", get(schema))
        .route(
            "/api/2.1/unity-catalog/effective-permissions/{securable_type}/{full_name}",
            get(effective_permissions),
        )
}

async fn me() -> Reply {
    reply::ok(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "1",
        "userName": LOCAL_USER,
        "displayName": "dbrxr local user",
        "active": true,
        "emails": [{"type": "work", "value": LOCAL_USER, "primary": true}],
        "groups": [{"display": "users", "type": "direct", "value": "2", "$ref": "Groups/2"}],
    }))
}

/// The parts of a dotted name, each non-empty, exactly `n` of them.
fn parts(full_name: &str, n: usize, what: &str) -> Result<Vec<String>, axum::response::Response> {
    let p: Vec<String> = full_name.split('.').map(str::to_string).collect();
    if p.len() != n || p.iter().any(|s| s.trim().is_empty()) {
        return Err(invalid(format!("Invalid {what} name '{full_name}'.")));
    }
    Ok(p)
}

fn owned(extra: Value) -> Value {
    let mut v = json!({"owner": LOCAL_USER, "metastore_id": "local-metastore", "created_by": LOCAL_USER});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

async fn catalog(State(local): State<Shared>, Path(name): Path<String>) -> Reply {
    parts(&name, 1, "catalog")?;
    ensure_exists(&local.fs_root(), &[name.clone()])?;
    reply::ok(owned(json!({"name": name, "full_name": name, "catalog_type": "MANAGED_CATALOG"})))
}

async fn schema(State(local): State<Shared>, Path(full_name): Path<String>) -> Reply {
    let p = parts(&full_name, 2, "schema")?;
    ensure_exists(&local.fs_root(), &p)?;
    reply::ok(owned(json!({"name": p[1], "catalog_name": p[0], "full_name": full_name})))
}

/// The warehouse directory of the contexts' Spark catalogs.
fn warehouse(fs_root: &FsPath) -> std::path::PathBuf {
    fs_root.join("spark").join("warehouse")
}

/// The directory name (without `.db`) of a Unity Catalog schema in the
/// warehouse, as the contexts' Spark catalogs lay it out: `main.s` is
/// `main__s`, `hive_metastore.s` is `s`.
fn local_database(catalog: &str, schema: &str) -> String {
    if catalog == "hive_metastore" {
        schema.to_string()
    } else {
        format!("{catalog}__{schema}")
    }
}

/// Whether catalog `c` exists: `main` and `hive_metastore` always, any
/// other once made (CREATE CATALOG leaves `_catalogs/<c>`) or once a schema
/// of it was created.
fn catalog_exists(fs_root: &FsPath, c: &str) -> bool {
    if c == "main" || c == "hive_metastore" || warehouse(fs_root).join("_catalogs").join(c).is_dir() {
        return true;
    }
    let prefix = format!("{c}__");
    std::fs::read_dir(warehouse(fs_root))
        .map(|d| {
            d.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().to_lowercase();
                n.starts_with(&prefix) && n.ends_with(".db")
            })
        })
        .unwrap_or(false)
}

/// Whether schema `c.s` exists: its Spark database has a directory (made by
/// CREATE SCHEMA in any context); every catalog has `default` and
/// `information_schema`, as in Unity Catalog. Names are case-insensitive.
pub fn schema_exists(fs_root: &FsPath, c: &str, s: &str) -> bool {
    let (c, s) = (c.to_lowercase(), s.to_lowercase());
    if !catalog_exists(fs_root, &c) {
        return false;
    }
    if s == "default" || s == "information_schema" {
        return true;
    }
    warehouse(fs_root).join(format!("{}.db", local_database(&c, &s))).is_dir()
}

/// The service's 404 for a catalog (`[c]`) or schema (`[c, s]`) that does not
/// exist; securables below a schema are not checked.
fn ensure_exists(fs_root: &FsPath, p: &[String]) -> Result<(), axum::response::Response> {
    let c = p[0].to_lowercase();
    if !catalog_exists(fs_root, &c) {
        return Err(reply::api(404, "CATALOG_DOES_NOT_EXIST", format!("Catalog '{}' does not exist.", p[0])));
    }
    if p.len() >= 2 && !schema_exists(fs_root, &c, &p[1]) {
        return Err(reply::api(404, "SCHEMA_DOES_NOT_EXIST",
                              format!("Schema '{}.{}' does not exist.", p[0], p[1])));
    }
    Ok(())
}

async fn effective_permissions(
    State(local): State<Shared>,
    Path((securable_type, full_name)): Path<(String, String)>,
) -> Reply {
    let n = match securable_type.to_ascii_lowercase().as_str() {
        "metastore" | "catalog" => 1,
        "schema" => 2,
        "table" | "volume" | "function" | "registered_model" => 3,
        _ => return Err(invalid(format!("Invalid securable type '{securable_type}'."))),
    };
    let p = parts(&full_name, n, &securable_type.to_ascii_lowercase())?;
    if !securable_type.eq_ignore_ascii_case("metastore") {
        ensure_exists(&local.fs_root(), &p[..p.len().min(2)])?;
    }
    reply::ok(json!({
        "privilege_assignments": [{"principal": LOCAL_USER, "privileges": [{"privilege": "ALL_PRIVILEGES"}]}]
    }))
}
