//! Request parameters from wherever clients put them: the query string, and a
//! JSON, form-urlencoded or multipart body (brickster sends multipart; old 1.2
//! docs say urlencoded; SDKs send JSON; brickster even sends a JSON body on
//! GET). Unknown fields are kept and ignored by the handlers. The extractors
//! in `extract` read the body; this is the value they produce.

use serde_json::{Map, Value};

#[derive(Default, Debug)]
pub struct Params {
    fields: Map<String, Value>,
}

impl Params {
    /// Parse the query string and a body already read (multipart bodies are
    /// parsed by the caller). `Err` is a message for the caller's error shape.
    pub fn parse(query: Option<&str>, ctype: &str, body: &[u8]) -> Result<Params, String> {
        let mut p = Params::default();
        if let Some(q) = query {
            p.add_pairs(serde_urlencoded::from_str(q).map_err(|e| format!("malformed query string: {e}"))?);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(p);
        }
        // `curl -d '{...}'` declares a form but sends JSON: trust the bytes.
        let looks_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if ctype.starts_with("application/x-www-form-urlencoded") && !looks_json {
            p.add_pairs(serde_urlencoded::from_bytes(body).map_err(|e| format!("malformed form body: {e}"))?);
            return Ok(p);
        }
        // JSON is the default, whatever the declared type (clients vary).
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => p.fields.extend(m),
            Ok(_) => return Err("the request body must be a JSON object".to_string()),
            Err(e) => return Err(format!("malformed JSON in the request body: {e}")),
        }
        Ok(p)
    }

    fn add_pairs(&mut self, pairs: Vec<(String, String)>) {
        for (k, v) in pairs {
            self.fields.insert(k, Value::String(v));
        }
    }

    /// Add a text field (a multipart part).
    pub fn insert(&mut self, name: String, value: String) {
        self.fields.insert(name, Value::String(value));
    }

    /// Params from fields already parsed (a streamed multipart body).
    pub fn from_fields(fields: Map<String, Value>) -> Params {
        Params { fields }
    }

    /// A string field; numbers are accepted as their text.
    pub fn str(&self, name: &str) -> Option<String> {
        match self.fields.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A string field, borrowed (large base64 payloads are not copied).
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.fields.get(name)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A non-empty string field.
    pub fn nonempty(&self, name: &str) -> Option<String> {
        self.str(name).filter(|s| !s.is_empty())
    }

    /// A boolean: JSON `true`/`false` or the strings `true`/`false`.
    /// `Err` when present but not a boolean.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, String> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(format!("{name} must be true or false, not {v}")),
        }
    }

    /// An integer: a JSON number or a numeric string. `Err` when malformed.
    pub fn int(&self, name: &str) -> Result<Option<i64>, String> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| format!("{name} must be an integer, not {n}"))
            }
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| format!("{name} must be an integer, not {s:?}"))
            }
            Some(v) => Err(format!("{name} must be an integer, not {v}")),
        }
    }
}
