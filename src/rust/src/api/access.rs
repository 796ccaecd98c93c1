//! Who the caller is and what they may do: the SCIM `Me` endpoint and the
//! Unity Catalog reads `dbx_sitrep()` needs (a catalog's or schema's details,
//! and the effective privileges on it, inherited ones included). Answers stay
//! JSON: R reads the few fields it needs and tolerates new ones.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::{encode_path, Request, Transport};

/// The securables whose details and privileges the situation report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Securable {
    Catalog,
    Schema,
}

impl Securable {
    pub fn parse(s: &str) -> Result<Securable> {
        match s.to_ascii_lowercase().as_str() {
            "catalog" => Ok(Securable::Catalog),
            "schema" => Ok(Securable::Schema),
            _ => Err(Error::input(format!("unknown securable type `{s}`: expected \"catalog\" or \"schema\""))),
        }
    }
    /// The collection of its details route, `/api/2.1/unity-catalog/<x>/<name>`.
    fn collection(self) -> &'static str {
        match self {
            Securable::Catalog => "catalogs",
            Securable::Schema => "schemas",
        }
    }
    /// As the permissions routes spell it.
    fn wire(self) -> &'static str {
        match self {
            Securable::Catalog => "catalog",
            Securable::Schema => "schema",
        }
    }
}

/// `GET /api/2.0/preview/scim/v2/Me`: the user (or service principal) the
/// credentials belong to, with `userName` and `groups`.
pub async fn current_user(t: &Transport) -> Result<Value> {
    t.json(Request::get("/api/2.0/preview/scim/v2/Me")).await
}

/// `GET /api/2.1/unity-catalog/{catalogs|schemas}/{full_name}`: its `owner`,
/// and whether it exists (404 otherwise).
pub async fn details(t: &Transport, kind: Securable, full_name: &str) -> Result<Value> {
    let path = format!("/api/2.1/unity-catalog/{}/{}", kind.collection(), encode_path(full_name));
    t.json(Request::get(path)).await
}

/// `GET /api/2.1/unity-catalog/effective-permissions/{type}/{full_name}`:
/// every principal's privileges on it, inherited ones included (unpaginated).
pub async fn effective_permissions(t: &Transport, kind: Securable, full_name: &str) -> Result<Value> {
    let path = format!("/api/2.1/unity-catalog/effective-permissions/{}/{}", kind.wire(), encode_path(full_name));
    t.json(Request::get(path)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn securable_types_are_checked() {
        assert_eq!(Securable::parse("SCHEMA").unwrap(), Securable::Schema);
        assert_eq!(Securable::parse("catalog").unwrap().collection(), "catalogs");
        assert!(Securable::parse("table").is_err());
    }
}
