//! Connection configuration, resolved exactly like the Databricks SDKs
//! (reference §5): explicit arguments → `DATABRICKS_*` environment variables →
//! a profile of `~/.databrickscfg` → the prototype's legacy variables.
//!
//! Resolution is pure (environment and home directory are injected) so that it
//! can be unit tested; it never touches the network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::redact::Secret;

/// Attributes we resolve, with their SDK environment variable.
pub const ATTRIBUTES: &[(&str, &str)] = &[
    ("host", "DATABRICKS_HOST"),
    ("token", "DATABRICKS_TOKEN"),
    ("cluster_id", "DATABRICKS_CLUSTER_ID"),
    ("profile", "DATABRICKS_CONFIG_PROFILE"),
    ("config_file", "DATABRICKS_CONFIG_FILE"),
    ("auth_type", "DATABRICKS_AUTH_TYPE"),
    ("client_id", "DATABRICKS_CLIENT_ID"),
    ("client_secret", "DATABRICKS_CLIENT_SECRET"),
    ("staging", "DBRXR_STAGING"),
];

/// The prototype's variables, honoured after everything else.
pub const LEGACY: &[(&str, &str)] = &[
    ("host", "DBRX_HOST"),
    ("token", "DBRX_API_TOKEN"),
    ("cluster_id", "CLUSTER_ID"),
];

const SECRET_ATTRS: &[&str] = &["token", "client_secret"];
const AUTH_ATTRS: &[&str] = &["token", "client_id", "client_secret"];
pub const AUTH_TYPES: &[&str] = &["pat", "oauth-m2m", "databricks-cli"];

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum AuthSpec {
    Pat { token: Secret },
    OAuthM2M { client_id: String, client_secret: Secret },
    DatabricksCli { profile: Option<String> },
}

impl AuthSpec {
    pub fn auth_type(&self) -> &'static str {
        match self {
            AuthSpec::Pat { .. } => "pat",
            AuthSpec::OAuthM2M { .. } => "oauth-m2m",
            AuthSpec::DatabricksCli { .. } => "databricks-cli",
        }
    }
}

/// A resolved configuration. `Debug` is safe: secrets are [`Secret`]s.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub cluster_id: String,
    pub auth: AuthSpec,
    pub profile: Option<String>,
    pub config_file: Option<String>,
    pub staging: Option<String>,
    /// attribute → where its value came from (e.g. `argument`,
    /// `environment variable DATABRICKS_HOST`, `profile dev of ~/.databrickscfg`).
    pub sources: BTreeMap<String, String>,
    /// What the caller should be told (credentials removed from the host).
    pub warnings: Vec<String>,
}

/// What the caller passed explicitly; empty strings count as unset.
pub type Explicit = BTreeMap<String, String>;

/// Resolve a configuration. `env` looks up environment variables; `home` is the
/// user's home directory (for `~/.databrickscfg`).
pub fn resolve(
    explicit: &Explicit,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Config> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut sources: BTreeMap<String, String> = BTreeMap::new();

    for (attr, _) in ATTRIBUTES {
        if let Some(v) = explicit.get(*attr).filter(|v| !v.trim().is_empty()) {
            values.insert(attr.to_string(), v.trim().to_string());
            sources.insert(attr.to_string(), "argument".into());
        }
    }
    if let Some(unknown) = explicit.keys().find(|k| !ATTRIBUTES.iter().any(|(a, _)| a == k)) {
        return Err(Error::config(format!("unknown configuration attribute `{unknown}`"))
            .hint(format!(
                "known attributes: {}",
                ATTRIBUTES.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", ")
            )));
    }
    for (attr, var) in ATTRIBUTES {
        if values.contains_key(*attr) {
            continue;
        }
        if let Some(v) = env(var).filter(|v| !v.trim().is_empty()) {
            values.insert(attr.to_string(), v.trim().to_string());
            sources.insert(attr.to_string(), format!("environment variable {var}"));
        }
    }

    // The SDK rule: read the file only if a profile was asked for, or nothing
    // auth-related and no host is set yet.
    let profile_requested = values.contains_key("profile");
    let auth_set = AUTH_ATTRS.iter().any(|a| values.contains_key(*a));
    let config_path = config_file_path(values.get("config_file").map(String::as_str), home);
    if profile_requested || (!auth_set && !values.contains_key("host")) {
        load_profile(&config_path, profile_requested, &mut values, &mut sources)?;
    }

    for (attr, var) in LEGACY {
        if values.contains_key(*attr) {
            continue;
        }
        if let Some(v) = env(var).filter(|v| !v.trim().is_empty()) {
            values.insert(attr.to_string(), v.trim().to_string());
            sources.insert(attr.to_string(), format!("environment variable {var} (legacy)"));
        }
    }

    let Some(raw_host) = values.get("host").cloned() else {
        return Err(not_configured(&config_path));
    };
    let (host, had_userinfo) = check_host(&raw_host)?;
    let mut warnings = Vec::new();
    if had_userinfo {
        warnings.push(format!(
            "the host URL{} had credentials in it (user:password@); they were removed and are not used: pass the token as `token` instead",
            sources.get("host").map(|s| format!(" from {s}")).unwrap_or_default()
        ));
    }
    for attr in ["token", "client_id", "client_secret"] {
        if let Some(v) = values.get(attr) {
            check_credential(attr, v, &sources)?;
        }
    }
    let auth = resolve_auth(&values, &sources, env)?;
    let Some(cluster_id) = values.get("cluster_id").cloned() else {
        return Err(Error::config("no cluster id is configured")
            .field("attribute", "cluster_id")
            .hint("pass `cluster_id =` to `dbx_connect()`, set DATABRICKS_CLUSTER_ID, or add `cluster_id = ...` to your profile")
            .hint("the cluster must be an all-purpose cluster in Dedicated (single user) access mode"));
    };
    Ok(Config {
        host,
        cluster_id,
        auth,
        profile: values.get("profile").cloned(),
        config_file: Some(config_path.display().to_string()),
        staging: values.get("staging").cloned(),
        sources,
        warnings,
    })
}

fn not_configured(config_path: &Path) -> Error {
    Error::config("no Databricks workspace is configured")
        .field("not_configured", "true")
        .hint("tried: the `host` argument, DATABRICKS_HOST, a profile of the config file, DBRX_HOST")
        .hint(format!(
            "set DATABRICKS_HOST and DATABRICKS_TOKEN, or add a profile to {}",
            config_path.display()
        ))
        .hint("or use `local_cluster()` to run everything on the embedded local cluster")
}

fn config_file_path(explicit: Option<&str>, home: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) => expand_tilde(p, home),
        None => home
            .map(|h| h.join(".databrickscfg"))
            .unwrap_or_else(|| PathBuf::from(".databrickscfg")),
    }
}

fn expand_tilde(p: &str, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(p),
    }
}

fn load_profile(
    path: &Path,
    profile_requested: bool,
    values: &mut BTreeMap<String, String>,
    sources: &mut BTreeMap<String, String>,
) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(_) if !profile_requested => return Ok(()),
        Err(e) => {
            let profile = values.get("profile").cloned().unwrap_or_default();
            return Err(Error::config(format!(
                "profile `{profile}` was requested but the config file {} cannot be read: {e}",
                path.display()
            ))
            .field("profile", profile)
            .hint("create the profile with `databricks configure --profile <name>`, or set DATABRICKS_CONFIG_FILE"));
        }
    };
    // The error names the file and line, never the line's text (it may be a secret).
    let ini = parse_ini(&text).map_err(|m| {
        Error::config(format!("line {} of the config file {} is malformed: {}", m.line, path.display(), m.why))
            .field("config_file", path.display().to_string())
            .field("line", m.line.to_string())
            .hint("fix or remove that line: settings are `key = value` under a `[profile]` header")
            .hint("a value that went onto a line of its own (a pasted token) belongs after its `key =`")
    })?;
    let (profile, explicit) = match values.get("profile") {
        Some(p) => (p.clone(), true),
        None => match ini.get("__settings__").and_then(|s| s.get("default_profile")) {
            Some(p) => (p.clone(), true),
            None => ("DEFAULT".to_string(), false),
        },
    };
    if profile == "__settings__" {
        return Err(Error::config("`__settings__` is not a profile")
            .hint("name one of the profiles of the config file"));
    }
    let Some(section) = ini.get(&profile) else {
        if !explicit {
            return Ok(());
        }
        let mut names: Vec<&str> = ini.keys().map(String::as_str).filter(|n| *n != "__settings__").collect();
        names.sort();
        return Err(Error::config(format!(
            "profile `{profile}` does not exist in {}",
            path.display()
        ))
        .field("profile", profile.clone())
        .hint(if names.is_empty() {
            "the file has no profiles".to_string()
        } else {
            format!("profiles there: {}", names.join(", "))
        }));
    };
    let origin = format!("profile {profile} of {}", path.display());
    for (key, value) in section {
        let attr = key.as_str();
        if !ATTRIBUTES.iter().any(|(a, _)| *a == attr) || attr == "profile" || attr == "config_file" {
            continue;
        }
        if values.contains_key(attr) || value.is_empty() {
            continue;
        }
        values.insert(attr.to_string(), value.clone());
        sources.insert(attr.to_string(), origin.clone());
    }
    if !values.contains_key("profile") {
        values.insert("profile".into(), profile.clone());
        sources.insert("profile".into(), format!("default profile of {}", path.display()));
    }
    Ok(())
}

/// A line of a config file that is not `[section]`, `key = value` or a
/// comment (1-based line number, and what is wrong without its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub line: usize,
    pub why: &'static str,
}

/// A tiny INI reader matching Python's configparser for the files the
/// Databricks CLI writes: `[section]`, `key = value` (or `key: value`), `#`/`;`
/// comments, indented lines continuing a value. Keys are lower-cased, values
/// trimmed. Anything else is [`Malformed`], as configparser refuses it too
/// (a token pasted on a line of its own must not be silently dropped).
pub fn parse_ini(text: &str) -> std::result::Result<BTreeMap<String, BTreeMap<String, String>>, Malformed> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut last_key: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let bad = |why| Malformed { line: i + 1, why };
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if let (true, Some(sec), Some(key)) = (indented, &current, &last_key) {
            // A continuation of the previous value (configparser joins with a newline).
            if let Some(v) = out.get_mut(sec).and_then(|m| m.get_mut(key)) {
                v.push('\n');
                v.push_str(l);
            }
            continue;
        }
        if l.starts_with('[') {
            if !l.ends_with(']') || l.len() < 3 {
                return Err(bad("a section header must be `[name]`"));
            }
            let name = l[1..l.len() - 1].trim().to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
            last_key = None;
            continue;
        }
        let Some(sec) = &current else {
            return Err(bad("a setting comes before any `[section]` header"));
        };
        match l.find(['=', ':']) {
            Some(0) => return Err(bad("a setting has no name before `=`")),
            Some(k) => {
                let key = l[..k].trim().to_lowercase();
                let value = l[k + 1..].trim().to_string();
                out.entry(sec.clone()).or_default().insert(key.clone(), value);
                last_key = Some(key);
            }
            None => return Err(bad("it is not `key = value`, a `[section]` header or a comment")),
        }
    }
    Ok(out)
}

/// Normalise a host like the SDKs: add `https://` when there is no scheme, keep
/// an explicit `http://` (loopback), drop a trailing `/`, an `/api/...` suffix
/// and an explicit `:443` on https. The host name and port are checked here,
/// so a bad one fails at connect, not after retries on first use.
pub fn normalize_host(raw: &str) -> Result<String> {
    Ok(check_host(raw)?.0)
}

/// [`normalize_host`], also saying whether credentials (`user:secret@`) were
/// embedded in the URL: they are dropped and never shown, not even in errors.
pub fn check_host(raw: &str) -> Result<(String, bool)> {
    let (clean, had_userinfo) = strip_userinfo(raw.trim());
    let shown = clean.as_str();
    if shown.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::config("the host contains spaces or control characters")
            .hint("use the workspace URL alone, e.g. https://dbc-1234abcd-5678.cloud.databricks.com"));
    }
    let mut h = shown.to_string();
    if !h.contains("://") {
        h = format!("https://{h}");
    }
    let (scheme, rest) = match h.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r.to_string()),
        None => invalid_host(shown)?,
    };
    if scheme != "https" && scheme != "http" {
        return Err(Error::config(format!("host `{shown}` has unsupported scheme `{scheme}`"))
            .hint("use https://<workspace>.cloud.databricks.com (http:// only for a local cluster)"));
    }
    let mut authority = rest.as_str();
    let mut path = "";
    if let Some(i) = rest.find(['/', '?', '#']) {
        authority = &rest[..i];
        path = &rest[i..];
    }
    if authority.is_empty() {
        return invalid_host(shown);
    }
    check_authority(authority, shown)?;
    if path.contains(['?', '#']) {
        return Err(Error::config(format!("host `{shown}` has a query or fragment"))
            .hint("use the workspace URL alone, e.g. https://dbc-1234abcd-5678.cloud.databricks.com"));
    }
    // Keep a path prefix (reverse proxies) but drop anything from `/api/` on.
    let mut path = path.to_string();
    if let Some(i) = path.find("/api/").or_else(|| path.ends_with("/api").then(|| path.len() - 4)) {
        path.truncate(i);
    }
    while path.ends_with('/') {
        path.pop();
    }
    let authority = if scheme == "https" {
        authority.strip_suffix(":443").unwrap_or(authority)
    } else {
        authority
    };
    Ok((format!("{scheme}://{authority}{path}"), had_userinfo))
}

/// Remove `user:password@` from a URL-ish text.
fn strip_userinfo(raw: &str) -> (String, bool) {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), raw),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => (format!("{scheme}{}", &rest[at + 1..]), true),
        None => (raw.to_string(), false),
    }
}

/// `name`, `name:port` or `[v6]:port`, the port a number in 1..=65535.
fn check_authority(authority: &str, shown: &str) -> Result<()> {
    let (name, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else { return invalid_host(shown) };
        match after {
            "" => (addr, None),
            p => match p.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None => return invalid_host(shown),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (authority, None),
        }
    };
    let name_ok = !name.is_empty()
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
    if !name_ok {
        return invalid_host(shown);
    }
    if let Some(p) = port {
        if !matches!(p.parse::<u32>(), Ok(1..=65535)) || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::config(format!("host `{shown}` has an invalid port `{p}`"))
                .field("attribute", "host")
                .hint("a port is a number from 1 to 65535, e.g. http://127.0.0.1:8080"));
        }
    }
    Ok(())
}

fn invalid_host<T>(shown: &str) -> Result<T> {
    Err(Error::config(format!("host `{shown}` is not a valid URL"))
        .field("attribute", "host")
        .hint("use the workspace URL, e.g. https://dbc-1234abcd-5678.cloud.databricks.com"))
}

/// A credential must be printable text: a newline or other control character
/// (a token read from a file with its line end) would corrupt the header.
fn check_credential(attr: &str, value: &str, sources: &BTreeMap<String, String>) -> Result<()> {
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        let from = sources.get(attr).map(|s| format!(" (from {s})")).unwrap_or_default();
        return Err(Error::config(format!("the {attr}{from} contains spaces or control characters"))
            .field("attribute", attr)
            .hint("copy the value again without line breaks or spaces, e.g. `token = trimws(readLines(path))`"));
    }
    Ok(())
}

fn resolve_auth(
    values: &BTreeMap<String, String>,
    sources: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuthSpec> {
    let token = values.get("token");
    let client_id = values.get("client_id");
    let client_secret = values.get("client_secret");
    let src = |a: &str| sources.get(a).cloned().unwrap_or_else(|| "unset".into());

    let requested = values.get("auth_type").map(|t| t.trim().to_ascii_lowercase().replace('_', "-"));
    let m2m = || -> Result<AuthSpec> {
        match (client_id, client_secret) {
            (Some(id), Some(secret)) => Ok(AuthSpec::OAuthM2M {
                client_id: id.clone(),
                client_secret: Secret::new(secret.clone()),
            }),
            _ => Err(Error::auth("OAuth M2M needs both a client id and a client secret")
                .hint(format!("client_id: {}", src("client_id")))
                .hint(format!("client_secret: {}", src("client_secret")))
                .hint("set DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET (a service principal's OAuth secret)")),
        }
    };
    let pat = || -> Result<AuthSpec> {
        match token {
            Some(t) => Ok(AuthSpec::Pat { token: Secret::new(t.clone()) }),
            None => Err(Error::auth("auth type `pat` needs a token")
                .hint("set DATABRICKS_TOKEN, pass `token =`, or add `token = ...` to your profile")),
        }
    };
    if let Some(t) = requested {
        return match t.as_str() {
            "pat" => pat(),
            "oauth-m2m" => m2m(),
            "databricks-cli" => Ok(AuthSpec::DatabricksCli { profile: values.get("profile").cloned() }),
            other => Err(Error::config(format!("auth type `{other}` is not supported"))
                .field("auth_type", other.to_string())
                .hint(format!("supported: {}", AUTH_TYPES.join(", ")))
                .hint(format!("auth_type came from {}", src("auth_type")))),
        };
    }
    let has_pat = token.is_some();
    let has_m2m = client_id.is_some() || client_secret.is_some();
    match (has_pat, has_m2m) {
        (true, true) => Err(Error::config(
            "more than one authorization method configured: pat and oauth-m2m",
        )
        .hint(format!("token: {}", src("token")))
        .hint(format!(
            "client_id/client_secret: {}",
            src(if client_id.is_some() { "client_id" } else { "client_secret" })
        ))
        .hint("set `auth_type =` (or DATABRICKS_AUTH_TYPE) to pick one, or unset the other")),
        (true, false) => pat(),
        (false, true) => m2m(),
        (false, false) => {
            if cli_available(env) {
                return Ok(AuthSpec::DatabricksCli { profile: values.get("profile").cloned() });
            }
            Err(Error::auth("no authentication method is configured")
                .hint("pat: `token =`, DATABRICKS_TOKEN, `token` in the profile, or DBRX_API_TOKEN")
                .hint("oauth-m2m: `client_id =`/`client_secret =`, DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET, or the profile")
                .hint("databricks-cli: install the Databricks CLI and run `databricks auth login`"))
        }
    }
}

/// Whether the Databricks CLI can be found (DATABRICKS_CLI_PATH or on PATH).
fn cli_available(env: &dyn Fn(&str) -> Option<String>) -> bool {
    if let Some(p) = env("DATABRICKS_CLI_PATH").filter(|p| !p.is_empty()) {
        return Path::new(&p).is_file();
    }
    env("PATH")
        .map(|path| std::env::split_paths(&path).any(|d| d.join("databricks").is_file()))
        .unwrap_or(false)
}

/// Whether an attribute holds a secret (never shown unmasked).
pub fn is_secret(attr: &str) -> bool {
    SECRET_ATTRS.contains(&attr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| m.get(k).cloned()
    }

    fn explicit(pairs: &[(&str, &str)]) -> Explicit {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn cfg_home(text: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".databrickscfg"), text).unwrap();
        d
    }

    #[test]
    fn hosts_are_checked_and_credentials_stripped() {
        let e = normalize_host("http://127.0.0.1:notaport").unwrap_err();
        assert!(e.message.contains("invalid port"), "{}", e.message);
        assert!(normalize_host("http://127.0.0.1:70000").is_err());
        assert!(normalize_host("http://127.0.0.1:").is_err());
        assert!(normalize_host("https://a b.com").is_err());
        assert!(normalize_host("https://x.\u{7}com").is_err());
        assert_eq!(normalize_host("http://[::1]:8080").unwrap(), "http://[::1]:8080");
        let (h, creds) = check_host("https://user:S3cr3tXYZ@x.cloud.databricks.com/").unwrap();
        assert_eq!(h, "https://x.cloud.databricks.com");
        assert!(creds);
        let e = check_host("https://user:S3cr3tXYZ@bad host").unwrap_err();
        assert!(!e.to_string().contains("S3cr3tXYZ"));
        let e = resolve(&explicit(&[("host", "h"), ("token", "abc\ndef"), ("cluster_id", "c")]), &env_of(&[]), None).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Config);
        assert!(!e.to_string().contains("abc"));
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(normalize_host("adb-1.azuredatabricks.net").unwrap(), "https://adb-1.azuredatabricks.net");
        assert_eq!(normalize_host("https://x.cloud.databricks.com/").unwrap(), "https://x.cloud.databricks.com");
        assert_eq!(normalize_host("https://x.cloud.databricks.com/api/2.0/").unwrap(), "https://x.cloud.databricks.com");
        assert_eq!(normalize_host("https://x.com:443").unwrap(), "https://x.com");
        assert_eq!(normalize_host("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert!(normalize_host("ftp://x").is_err());
        assert!(normalize_host("https://").is_err());
    }

    #[test]
    fn explicit_beats_env_beats_file() {
        let home = cfg_home("[DEFAULT]\nhost = file.example.com\ntoken = filetoken\ncluster_id = c-file\n");
        let env = env_of(&[("DATABRICKS_CLUSTER_ID", "c-env")]);
        // Nothing auth-related and no host set: the file is read.
        let c = resolve(&explicit(&[]), &env, Some(home.path())).unwrap();
        assert_eq!(c.host, "https://file.example.com");
        assert_eq!(c.cluster_id, "c-env");
        assert_eq!(c.sources["cluster_id"], "environment variable DATABRICKS_CLUSTER_ID");
        assert!(c.sources["host"].starts_with("profile DEFAULT of"));
        let c = resolve(&explicit(&[("cluster_id", "c-arg")]), &env, Some(home.path())).unwrap();
        assert_eq!(c.cluster_id, "c-arg");
        assert_eq!(c.sources["cluster_id"], "argument");
    }

    #[test]
    fn host_in_env_suppresses_file_unless_profile_requested() {
        let home = cfg_home("[DEFAULT]\ntoken = filetoken\ncluster_id = c1\n[dev]\ntoken = devtoken\ncluster_id = c2\n");
        let env = env_of(&[("DATABRICKS_HOST", "h.example.com")]);
        let e = resolve(&explicit(&[]), &env, Some(home.path())).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Auth);
        let env = env_of(&[("DATABRICKS_HOST", "h.example.com"), ("DATABRICKS_CONFIG_PROFILE", "dev")]);
        let c = resolve(&explicit(&[]), &env, Some(home.path())).unwrap();
        assert_eq!(c.cluster_id, "c2");
        assert_eq!(c.host, "https://h.example.com");
        match c.auth {
            AuthSpec::Pat { token } => assert_eq!(token.expose(), "devtoken"),
            _ => panic!("expected pat"),
        }
    }

    #[test]
    fn settings_default_profile_and_missing_profile() {
        let home = cfg_home("[__settings__]\ndefault_profile = dev\n[DEFAULT]\nhost = a\ntoken = t\ncluster_id = c\n[dev]\nhost = b\ntoken = t2\ncluster_id = c2\n");
        let c = resolve(&explicit(&[]), &env_of(&[]), Some(home.path())).unwrap();
        assert_eq!(c.host, "https://b");
        assert_eq!(c.profile.as_deref(), Some("dev"));
        let e = resolve(&explicit(&[("profile", "nope")]), &env_of(&[]), Some(home.path())).unwrap_err();
        assert!(e.message.contains("`nope` does not exist"));
        assert!(e.hints[0].contains("DEFAULT, dev"));
    }

    #[test]
    fn a_malformed_line_names_the_file_and_line_never_its_text() {
        let secret = "dapiSECRET0123456789abcdef";
        let home = cfg_home(&format!("[DEFAULT]\nhost = https://x.cloud.databricks.com\ntoken =\n{secret}\ncluster_id = c\n"));
        let e = resolve(&explicit(&[]), &env_of(&[]), Some(home.path())).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Config);
        assert!(e.message.contains("line 4 of the config file"), "{}", e.message);
        assert!(e.message.contains(".databrickscfg"), "{}", e.message);
        assert_eq!(e.get_field("line"), Some("4"));
        assert!(!format!("{e} {e:?}").contains(secret));

        assert_eq!(parse_ini("host = x\n").unwrap_err().line, 1);
        assert_eq!(parse_ini("# c\n[a\nx = 1\n").unwrap_err().line, 2);
        assert_eq!(parse_ini("[a]\n = 1\n").unwrap_err().line, 2);
        // Comments, blank lines, `key: value` and continuations are fine.
        let ini = parse_ini("; c\n\n[a]\nk: v\nlong = one\n  two\n").unwrap();
        assert_eq!(ini["a"]["k"], "v");
        assert_eq!(ini["a"]["long"], "one\ntwo");
    }

    #[test]
    fn profiles_are_not_merged_with_default() {
        let home = cfg_home("[DEFAULT]\ncluster_id = from-default\n[dev]\nhost = b\ntoken = t\n");
        let e = resolve(&explicit(&[("profile", "dev")]), &env_of(&[]), Some(home.path())).unwrap_err();
        assert_eq!(e.get_field("attribute"), Some("cluster_id"));
    }

    #[test]
    fn empty_env_values_count_as_unset_and_legacy_vars_come_last() {
        let env = env_of(&[
            ("DATABRICKS_HOST", ""),
            ("DBRX_HOST", "legacy.example.com"),
            ("DBRX_API_TOKEN", "legacytoken"),
            ("CLUSTER_ID", "legacy-cluster"),
        ]);
        let c = resolve(&explicit(&[]), &env, None).unwrap();
        assert_eq!(c.host, "https://legacy.example.com");
        assert_eq!(c.cluster_id, "legacy-cluster");
        assert_eq!(c.sources["token"], "environment variable DBRX_API_TOKEN (legacy)");
    }

    #[test]
    fn two_methods_without_auth_type_is_an_error_naming_both() {
        let env = env_of(&[
            ("DATABRICKS_HOST", "h"),
            ("DATABRICKS_TOKEN", "t"),
            ("DATABRICKS_CLIENT_ID", "id"),
            ("DATABRICKS_CLIENT_SECRET", "s"),
            ("DATABRICKS_CLUSTER_ID", "c"),
        ]);
        let e = resolve(&explicit(&[]), &env, None).unwrap_err();
        assert!(e.message.contains("pat and oauth-m2m"));
        let c = resolve(&explicit(&[("auth_type", "oauth_m2m")]), &env, None).unwrap();
        assert_eq!(c.auth.auth_type(), "oauth-m2m");
    }

    #[test]
    fn nothing_configured_is_flagged() {
        let e = resolve(&explicit(&[]), &env_of(&[]), None).unwrap_err();
        assert_eq!(e.get_field("not_configured"), Some("true"));
    }

    #[test]
    fn no_auth_lists_what_was_tried() {
        let env = env_of(&[("DATABRICKS_HOST", "h"), ("DATABRICKS_CLUSTER_ID", "c"), ("PATH", "/nonexistent")]);
        let e = resolve(&explicit(&[]), &env, None).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Auth);
        assert!(e.hints.iter().any(|h| h.contains("DATABRICKS_TOKEN")));
        assert!(e.hints.iter().any(|h| h.contains("DATABRICKS_CLIENT_ID")));
    }

    #[test]
    fn unknown_auth_type_is_a_config_error() {
        let e = resolve(&explicit(&[("host", "h"), ("token", "t"), ("auth_type", "kerberos")]), &env_of(&[]), None).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Config);
    }
}
