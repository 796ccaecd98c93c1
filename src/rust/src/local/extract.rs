//! Typed extractors: every local route takes its input through these, so a
//! handler never reads a raw request. Each rejects with the error shape of
//! its API family (a [`Shape`]), and reads a body under the limit its router
//! sets as a layer ([`BodyLimit`]), refusing a larger one as soon as its
//! declared or received size says so: nothing large is ever buffered.

use std::marker::PhantomData;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path as UrlPath, Query, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use futures_util::StreamExt;

use super::params::Params;
use super::reply;

/// How an API family answers a malformed request.
pub trait Shape: Send + Sync + 'static {
    fn reject(message: String) -> Response;
}

/// 2.x routes (clusters, DBFS): `400 MALFORMED_REQUEST`.
pub struct Malformed;
impl Shape for Malformed {
    fn reject(message: String) -> Response {
        reply::api(400, "MALFORMED_REQUEST", message)
    }
}

/// Command Execution 1.2: the legacy `{"error": ...}` body.
pub struct Legacy;
impl Shape for Legacy {
    fn reject(message: String) -> Response {
        reply::legacy(message)
    }
}

/// Control routes: `400 INVALID_PARAMETER_VALUE`.
pub struct Invalid;
impl Shape for Invalid {
    fn reject(message: String) -> Response {
        reply::invalid(message)
    }
}

/// The OAuth token endpoint: `{"error": "invalid_request", ...}`.
pub struct OAuth;
impl Shape for OAuth {
    fn reject(message: String) -> Response {
        reply::oauth(axum::http::StatusCode::BAD_REQUEST, "invalid_request", &message)
    }
}

/// The most a route's body may hold, and the answer when it holds more
/// (given the request path, the declared size if any, and the limit). A
/// family's router sets it with `.layer(BodyLimit { .. }.layer())`.
#[derive(Clone, Copy)]
pub struct BodyLimit {
    pub max: usize,
    pub too_large: fn(&str, Option<u64>, usize) -> Response,
}

/// Bodies of JSON and form routes are small.
pub const SMALL_BODY_MAX: usize = 1 << 20;

impl BodyLimit {
    /// The limit of every route that sets none: 1 MiB, `400 INVALID_PARAMETER_VALUE`.
    pub const SMALL: BodyLimit = BodyLimit {
        max: SMALL_BODY_MAX,
        too_large: |path, n, max| {
            reply::invalid(format!(
                "The request body{} exceeds the maximum of {max} bytes for {path}.",
                size_note(n)
            ))
        },
    };

    pub fn layer(self) -> Extension<BodyLimit> {
        Extension(self)
    }

    fn of(parts: &Parts) -> BodyLimit {
        parts.extensions.get::<BodyLimit>().copied().unwrap_or(BodyLimit::SMALL)
    }

    /// Refuse a declared `Content-Length` over the limit before reading.
    fn check_declared(&self, parts: &Parts) -> Result<(), Response> {
        match declared_length(&parts.headers) {
            Some(n) if n > self.max as u64 => Err((self.too_large)(parts.uri.path(), Some(n), self.max)),
            _ => Ok(()),
        }
    }
}

/// " of N bytes" when the size was declared.
pub fn size_note(declared: Option<u64>) -> String {
    declared.map(|n| format!(" of {n} bytes")).unwrap_or_default()
}

pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

fn content_type(headers: &HeaderMap) -> String {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase()
}

fn is_multipart(headers: &HeaderMap) -> bool {
    content_type(headers).starts_with("multipart/form-data")
}

/// Read the whole body under the route's limit.
async fn bounded(parts: &Parts, body: Body) -> Result<bytes::Bytes, Response> {
    let limit = BodyLimit::of(parts);
    limit.check_declared(parts)?;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(reply::api(400, "BAD_REQUEST", "The request body was cut off before its end."));
        };
        if buf.len() + chunk.len() > limit.max {
            return Err((limit.too_large)(parts.uri.path(), None, limit.max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Text fields of a multipart body already read (file parts are skipped).
async fn multipart_fields<S: Shape>(parts: Parts, body: bytes::Bytes, mut p: Params) -> Result<Params, Response> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        S::reject(format!("malformed multipart body: {}", e.body_text()))
    };
    let req = Request::from_parts(parts, Body::from(body));
    let mut mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| S::reject(format!("malformed multipart body: {}", e.body_text())))?;
    while let Some(field) = mp.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or("").to_string();
        let is_file = field.file_name().is_some();
        let data = field.bytes().await.map_err(malformed)?;
        if !is_file {
            if let Ok(s) = std::str::from_utf8(&data) {
                p.insert(name, s.to_string());
            }
        }
    }
    Ok(p)
}

/// Request fields from the query string and a JSON, form-urlencoded or
/// multipart body, under the route's [`BodyLimit`]; malformed input is
/// answered in shape `S`.
pub struct Fields<S>(pub Params, pub PhantomData<S>);

impl<S: Shape, St: Send + Sync> FromRequest<St> for Fields<S> {
    type Rejection = Response;
    async fn from_request(req: Request, _: &St) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let body = bounded(&parts, body).await?;
        let ctype = content_type(&parts.headers);
        let query = parts.uri.query().map(str::to_string);
        let p = if ctype.starts_with("multipart/form-data") {
            let q = Params::parse(query.as_deref(), "", b"").map_err(S::reject)?;
            multipart_fields::<S>(parts, body, q).await?
        } else {
            Params::parse(query.as_deref(), &ctype, &body).map_err(S::reject)?
        };
        Ok(Fields(p, PhantomData))
    }
}

/// A body that may be too large to hold: multipart is handed over as a
/// stream (the handler writes its file part to disk under its own limit);
/// anything else is read as [`Fields`] under the route's limit.
pub enum FieldsOrMultipart<S> {
    Fields(Fields<S>),
    Multipart(Multipart),
}

impl<S: Shape, St: Send + Sync> FromRequest<St> for FieldsOrMultipart<S> {
    type Rejection = Response;
    async fn from_request(req: Request, st: &St) -> Result<Self, Response> {
        if !is_multipart(req.headers()) {
            return Fields::from_request(req, st).await.map(FieldsOrMultipart::Fields);
        }
        Multipart::from_request(req, st)
            .await
            .map(FieldsOrMultipart::Multipart)
            .map_err(|e| S::reject(format!("malformed multipart body: {}", e.body_text())))
    }
}

/// A JSON body read as `T` (an empty body is `T::default()`), under the
/// route's limit; `S` gets serde's message.
pub struct JsonBody<T, S>(pub T, pub PhantomData<S>);

impl<T, S, St> FromRequest<St> for JsonBody<T, S>
where
    T: serde::de::DeserializeOwned + Default,
    S: Shape,
    St: Send + Sync,
{
    type Rejection = Response;
    async fn from_request(req: Request, _: &St) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let body = bounded(&parts, body).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(T::default(), PhantomData));
        }
        serde_json::from_slice(&body)
            .map(|v| JsonBody(v, PhantomData))
            .map_err(|e| S::reject(e.to_string()))
    }
}

/// A raw body streamed by the handler (Files API uploads); a declared size
/// over the route's limit is refused before anything is read.
pub struct Upload {
    pub body: Body,
    pub limit: BodyLimit,
}

impl<St: Send + Sync> FromRequest<St> for Upload {
    type Rejection = Response;
    async fn from_request(req: Request, _: &St) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let limit = BodyLimit::of(&parts);
        limit.check_declared(&parts)?;
        Ok(Upload { body, limit })
    }
}

/// The `{*path}` of a route. A malformed one (bad percent-encoding, invalid
/// UTF-8) gets the service's 400 body, not the router's plain text.
pub struct VolPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for VolPath {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        UrlPath::<String>::from_request_parts(parts, state)
            .await
            .map(|UrlPath(p)| VolPath(p))
            .map_err(|e| reply::invalid(format!("The path is not valid: {}", e.body_text())))
    }
}

/// The query string as `T`, with the same treatment of malformed values.
pub struct Q<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Q(q))
            .map_err(|e| reply::invalid(format!("The query string is not valid: {}", e.body_text())))
    }
}

/// `Authorization: Basic base64(id:secret)`, if present and well formed.
pub struct BasicAuth(pub Option<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for BasicAuth {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let creds = (|| {
            let h = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
            let (scheme, rest) = h.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return None;
            }
            let text = String::from_utf8(crate::b64::decode(rest).ok()?).ok()?;
            let (id, secret) = text.split_once(':')?;
            Some((id.to_string(), secret.to_string()))
        })();
        Ok(BasicAuth(creds))
    }
}
