//! Which Python runs the contexts: the explicit choice, else `DBRXR_PYTHON`,
//! else the first of `python3` on PATH and `/usr/bin/python3` that can import
//! rpy2. Probes run once per interpreter and are cached for the process.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::error::Result;

use super::util::local_error;

/// The chosen interpreter and what it can do.
#[derive(Debug, Clone)]
pub struct Python {
    pub path: String,
    /// `import rpy2.rinterface` works (R is reachable through rpy2).
    pub rpy2: bool,
    /// Set when R work will fail: what to tell the user.
    pub warning: Option<String>,
}

#[derive(Clone, Copy)]
struct Probe {
    runs: bool,
    rpy2: bool,
}

fn probe(python: &str) -> Probe {
    static CACHE: OnceLock<Mutex<HashMap<String, Probe>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(p) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(python) {
        return *p;
    }
    let status = |code: &str| {
        Command::new(python)
            .args(["-c", code])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let runs = status("import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)");
    let p = Probe { runs, rpy2: runs && status("import rpy2.rinterface") };
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(python.to_string(), p);
    p
}

const INSTALL_HINT: &str =
    "install rpy2 for it (`apt-get install python3-rpy2` or `pip install rpy2`), or choose an interpreter that has it (argument `python`, flag `--python` or env DBRXR_PYTHON)";

/// Resolve the interpreter. Fails only when an explicitly chosen one cannot run
/// or no Python 3 exists at all.
pub fn resolve(explicit: Option<&str>) -> Result<Python> {
    let chosen = explicit
        .map(|s| (s.to_string(), "the `python` argument"))
        .or_else(|| {
            std::env::var("DBRXR_PYTHON")
                .ok()
                .filter(|s| !s.is_empty())
                .map(|s| (s, "DBRXR_PYTHON"))
        });
    if let Some((path, source)) = chosen {
        let path = absolute(path);
        let p = probe(&path);
        if !p.runs {
            return Err(local_error(format!(
                "the Python interpreter {path:?} (from {source}) could not be run"
            ))
            .hint("give the path of a Python 3.8+ interpreter, ideally one with rpy2"));
        }
        return Ok(with_warning(path, p.rpy2));
    }
    let candidates = ["python3", "/usr/bin/python3"];
    let mut first_runnable = None;
    for c in candidates {
        let p = probe(c);
        if p.rpy2 {
            return Ok(Python { path: c.to_string(), rpy2: true, warning: None });
        }
        if p.runs && first_runnable.is_none() {
            first_runnable = Some(c);
        }
    }
    match first_runnable {
        Some(c) => Ok(with_warning(c.to_string(), false)),
        None => Err(local_error("no Python 3 interpreter was found for the local cluster's contexts")
            .hint("install Python 3 with rpy2 (`apt-get install python3-rpy2`), or set DBRXR_PYTHON")),
    }
}

/// A runtime profile's interpreter (already found and checked by
/// `runtime::interpreter`), probed for rpy2 like any other.
pub fn with_runtime(path: String) -> Python {
    let rpy2 = probe(&path).rpy2;
    with_warning(path, rpy2)
}

/// Contexts run in their own working directory, so a relative path such as
/// `.venv/bin/python` is made absolute here, against the caller's directory.
fn absolute(path: String) -> String {
    let p = std::path::Path::new(&path);
    if p.is_relative() && p.components().count() > 1 {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(p).to_string_lossy().into_owned();
        }
    }
    path
}

fn with_warning(path: String, rpy2: bool) -> Python {
    let warning = (!rpy2).then(|| {
        format!("the local cluster's Python ({path}) cannot import rpy2, so R work in its contexts will fail; {INSTALL_HINT}")
    });
    Python { path, rpy2, warning }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_interpreter_is_an_error() {
        let e = resolve(Some("/nonexistent/python9")).unwrap_err();
        assert!(e.message.contains("could not be run"), "{}", e.message);
    }

    #[test]
    fn relative_interpreter_path_is_made_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(".venv/bin/python".into()), cwd.join(".venv/bin/python").to_string_lossy());
        assert_eq!(absolute("python3".into()), "python3");
        assert_eq!(absolute("/usr/bin/python3".into()), "/usr/bin/python3");
    }

    #[test]
    fn interpreter_without_rpy2_warns_how_to_install() {
        let p = with_warning("/x/python".into(), false);
        let w = p.warning.unwrap();
        assert!(w.contains("pip install rpy2") && w.contains("python3-rpy2"));
        assert!(with_warning("/x/python".into(), true).warning.is_none());
    }
}
