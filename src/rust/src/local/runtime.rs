//! Runtime profiles: the Databricks Runtime the local cluster stands in for.
//! A profile names the runtime's `spark_version` (what `clusters/get`
//! reports) and the Python environment its contexts and job tasks run: a venv
//! pinned to the libraries the runtime's release notes list
//! (`tools/runtime-<version>.txt`, built by `make runtime-<version>`).
//!
//! Only runtimes whose Python minor version this machine can install have a
//! profile; the others are refused with the reason.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

use super::util::local_error;

/// One Databricks Runtime LTS the local cluster can stand in for.
#[derive(Debug)]
pub struct Profile {
    /// As users spell it: `"15.4"`.
    pub version: &'static str,
    /// What `clusters/get` reports.
    pub spark_version: &'static str,
    /// The runtime's Python, major.minor.
    pub python: &'static str,
    /// (distribution, version) of the libraries the profile pins, as in
    /// `tools/runtime-<version>.txt` (a test keeps the two equal).
    pub pins: &'static [(&'static str, &'static str)],
}

/// The profiles, newest first.
pub const PROFILES: &[Profile] = &[Profile {
    version: "15.4",
    spark_version: "15.4.x-scala2.12",
    python: "3.11",
    pins: &[
        ("pandas", "1.5.3"),
        ("pyarrow", "14.0.1"),
        ("numpy", "1.23.5"),
        ("pyspark", "3.5.0"),
        ("mlflow-skinny", "2.11.4"),
    ],
}];

/// What a cluster without a runtime profile reports: the default profile's
/// runtime (its libraries are then whatever its Python has).
pub const DEFAULT_SPARK_VERSION: &str = PROFILES[0].spark_version;

/// LTS runtimes without a profile, and the Python they need that this machine
/// (Debian 12: Python 3.11 only) cannot install.
const UNSERVED: &[(&str, &str)] = &[("16.4", "3.12"), ("14.3", "3.10"), ("13.3", "3.10"), ("12.2", "3.9")];

/// The profile of `version` (`"15.4"`, also `"15.4 LTS"` or `"15.4.x-scala2.12"`).
pub fn profile(version: &str) -> Result<&'static Profile> {
    let v = version.trim();
    let short = v.trim_end_matches(" LTS").trim_end_matches(" lts");
    let short = short.split(".x").next().unwrap_or(short);
    if let Some(p) = PROFILES.iter().find(|p| p.version == short || p.spark_version == v) {
        return Ok(p);
    }
    let known = PROFILES.iter().map(|p| format!("\"{}\"", p.version)).collect::<Vec<_>>().join(", ");
    let e = match UNSERVED.iter().find(|(u, _)| *u == short) {
        Some((u, py)) => Error::input(format!(
            "runtime {u:?} has no profile here: Databricks Runtime {u} LTS runs Python {py}, which this machine cannot install"
        )),
        None => Error::input(format!("unknown runtime {v:?}")),
    };
    Err(e.hint(format!("runtime profiles: {known} (a Databricks Runtime LTS whose Python this machine has)")))
}

/// Where the profile's venv is looked for: `$DBRXR_RUNTIME_HOME/.venv-<version>`,
/// else `.venv-<version>` in the working directory (a dbrxr checkout, where
/// `make runtime-<version>` builds it).
pub fn venv_dir(p: &Profile) -> PathBuf {
    let home = std::env::var_os("DBRXR_RUNTIME_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    home.join(format!(".venv-{}", p.version))
}

/// The profile's interpreter, checked: it exists, is the runtime's Python and
/// has the pinned versions. A missing or stale venv is an error that names
/// the make target that builds it.
pub fn interpreter(p: &Profile) -> Result<String> {
    let dir = venv_dir(p);
    let python = dir.join("bin").join("python");
    let build = format!("make runtime-{}", p.version);
    let fix = format!(
        "build it with `{build}` in a dbrxr checkout, then start the cluster from that directory or set DBRXR_RUNTIME_HOME to it"
    );
    if !python.exists() {
        return Err(missing(p, format!(
            "the Python environment of runtime {} ({}) is missing: no {}",
            p.version,
            p.spark_version,
            python.display()
        ))
        .hint(fix));
    }
    let path = python.to_string_lossy().into_owned();
    let seen = versions(&path, p).map_err(|why| {
        missing(p, format!("the Python environment of runtime {} at {} does not run: {why}", p.version, dir.display()))
            .hint(fix.clone())
    })?;
    let wrong: Vec<String> = std::iter::once(("python", p.python))
        .chain(p.pins.iter().copied())
        .zip(&seen)
        .filter(|((_, want), got)| got.as_str() != *want)
        .map(|((name, want), got)| format!("{name} {got} (the runtime has {want})"))
        .collect();
    if !wrong.is_empty() {
        return Err(missing(p, format!(
            "the Python environment of runtime {} at {} is not the runtime's: {}",
            p.version,
            dir.display(),
            wrong.join(", ")
        ))
        .hint(format!("rebuild it: `rm -rf {}` and `{build}`", dir.display())));
    }
    Ok(path)
}

fn missing(p: &Profile, msg: String) -> Error {
    local_error(msg).field("runtime", p.version).field("make_target", format!("runtime-{}", p.version))
}

/// The Python major.minor and the installed version of each pin, in order
/// (`-` for one not installed), read from package metadata (nothing imported).
fn versions(python: &str, p: &Profile) -> std::result::Result<Vec<String>, String> {
    let names = p.pins.iter().map(|(n, _)| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    let code = format!(
        "import sys, importlib.metadata as m\n\
         def v(n):\n    try: return m.version(n)\n    except Exception: return '-'\n\
         print('%d.%d' % sys.version_info[:2]); [print(v(n)) for n in [{names}]]"
    );
    let out = Command::new(python)
        .args(["-c", &code])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or("").to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_found_by_any_spelling() {
        for v in ["15.4", " 15.4 LTS", "15.4.x-scala2.12"] {
            assert_eq!(profile(v).unwrap().spark_version, "15.4.x-scala2.12", "{v}");
        }
        assert_eq!(DEFAULT_SPARK_VERSION, "15.4.x-scala2.12");
    }

    #[test]
    fn runtimes_this_machine_cannot_serve_say_why() {
        let e = profile("16.4").unwrap_err();
        assert!(e.message.contains("Python 3.12") && e.message.contains("cannot install"), "{}", e.message);
        assert!(e.hints.iter().any(|h| h.contains("\"15.4\"")));
        let e = profile("9.9").unwrap_err();
        assert!(e.message.contains("unknown runtime"), "{}", e.message);
    }

    /// The table above is `tools/runtime-<version>.txt`'s `==` pins, no more, no less.
    #[test]
    fn pins_match_the_tools_files() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        for p in PROFILES {
            let file = root.join(format!("tools/runtime-{}.txt", p.version));
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue; // a package tarball carries no tools/ pins
            };
            let mut exact: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| l.split('#').next().unwrap().trim().split_once("=="))
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .filter(|(n, _)| n != "cffi") // Debian's rpy2 backend, not a runtime pin
                .collect();
            exact.sort();
            let mut want: Vec<(String, String)> =
                p.pins.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            want.sort();
            assert_eq!(exact, want, "{}", file.display());
        }
    }

    #[test]
    fn a_missing_venv_names_the_make_target() {
        std::env::set_var("DBRXR_RUNTIME_HOME", "/nonexistent/dbrxr-home");
        let e = interpreter(&PROFILES[0]).unwrap_err();
        std::env::remove_var("DBRXR_RUNTIME_HOME");
        assert!(e.message.contains("/nonexistent/dbrxr-home/.venv-15.4/bin/python"), "{}", e.message);
        assert!(e.hints.iter().any(|h| h.contains("make runtime-15.4")));
        assert!(e.fields.iter().any(|(k, v)| k == "make_target" && v == "runtime-15.4"));
    }
}
