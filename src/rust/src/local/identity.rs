//! Who the caller is, and what Unity Catalog lets them do, on a cluster that has
//! one user and enforces no permissions: SCIM `Me` answers that user (the one
//! the cluster is dedicated to), every well-formed catalog and schema exists
//! and is owned by them, and the effective privileges on any securable are
//! theirs, `ALL_PRIVILEGES`. Names of the wrong shape get the service's 400.

use axum::extract::Path;
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

async fn catalog(Path(name): Path<String>) -> Reply {
    parts(&name, 1, "catalog")?;
    reply::ok(owned(json!({"name": name, "full_name": name, "catalog_type": "MANAGED_CATALOG"})))
}

async fn schema(Path(full_name): Path<String>) -> Reply {
    let p = parts(&full_name, 2, "schema")?;
    reply::ok(owned(json!({"name": p[1], "catalog_name": p[0], "full_name": full_name})))
}

async fn effective_permissions(Path((securable_type, full_name)): Path<(String, String)>) -> Reply {
    let n = match securable_type.to_ascii_lowercase().as_str() {
        "metastore" | "catalog" => 1,
        "schema" => 2,
        "table" | "volume" | "function" | "registered_model" => 3,
        _ => return Err(invalid(format!("Invalid securable type '{securable_type}'."))),
    };
    parts(&full_name, n, &securable_type.to_ascii_lowercase())?;
    reply::ok(json!({
        "privilege_assignments": [{"principal": LOCAL_USER, "privileges": [{"privilege": "ALL_PRIVILEGES"}]}]
    }))
}
