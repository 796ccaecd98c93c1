//! `dbrxr-local`: the local cluster as a standalone server, for CI pipelines
//! and any Databricks client. First stdout line:
//! `dbrxr-local listening on http://127.0.0.1:PORT`. Runs until SIGINT or
//! SIGTERM (not tied to stdin, so it can run detached).

use std::process::ExitCode;

use dbrxr::local::{Input, LocalCluster, LocalOptions, OPTIONS};

/// Where the token comes from when `--token` is not given (it would show in `ps`).
const TOKEN_ENV: &str = "DBRXR_LOCAL_TOKEN";

/// The help text: the options come from the local cluster's option table.
fn usage() -> String {
    let mut u = String::from(
        "Usage: dbrxr-local [options]

A Databricks-compatible local cluster (clusters, Command Execution 1.2, DBFS,
Files API, OAuth M2M) whose execution contexts are Python processes (with rpy2
for R). Binds 127.0.0.1 only. Runs until SIGINT or SIGTERM.

Options:
",
    );
    let mut row = |left: String, help: String| {
        u.push_str(&format!("  {left:<28} {help}\n"));
    };
    for s in OPTIONS {
        let default = if s.default.is_empty() { String::new() } else { format!(" (default {})", s.default) };
        let accepts = match s.kind {
            dbrxr::local::Kind::Choice(_) => format!("; {}", s.accepts()),
            _ => String::new(),
        };
        row(format!("{} {}", s.flag(), s.placeholder()), format!("{}{default}{accepts}", s.help));
    }
    row("--token-file FILE".into(), "read the token from FILE (first line)".into());
    row("-h, --help".into(), "show this help".into());
    u.push_str(&format!(
        "\nThe token is, in order: --token, --token-file, the environment variable {TOKEN_ENV},\nelse generated and printed. {TOKEN_ENV} or --token-file keep it out of `ps`.\n"
    ));
    u
}

/// What the command line asks for.
struct Args {
    opts: LocalOptions,
    /// Whether the token was given (so it is not printed).
    token_given: bool,
}

fn parse(args: &[String], env_token: Option<String>) -> Result<Option<Args>, String> {
    let mut pairs: Vec<(String, Input)> = Vec::new();
    let mut token_file: Option<String> = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| format!("{name} needs a value"))
        };
        if name == "--token-file" {
            token_file = Some(value()?);
            continue;
        }
        let key = name.strip_prefix("--").unwrap_or("").replace('-', "_");
        if key.is_empty() || !OPTIONS.iter().any(|s| s.name == key) {
            return Err(format!("unknown option {name}"));
        }
        pairs.push((key, Input::Text(value()?)));
    }
    let has_token = pairs.iter().any(|(k, _)| k == "token");
    if !has_token {
        let from = match token_file {
            Some(path) => Some(read_token_file(&path)?),
            None => env_token.filter(|t| !t.is_empty()),
        };
        if let Some(t) = from {
            pairs.push(("token".to_string(), Input::Text(t)));
        }
    }
    let token_given = pairs.iter().any(|(k, _)| k == "token");
    let opts = LocalOptions::from_pairs(pairs).map_err(|e| e.to_string())?;
    Ok(Some(Args { opts, token_given }))
}

/// The first line of a token file, without its line end.
fn read_token_file(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("could not read the token file {path}: {e}"))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!("the token file {path} is empty"));
    }
    Ok(token)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Args { opts, token_given } = match parse(&args, std::env::var(TOKEN_ENV).ok()) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("dbrxr-local: {e}\n\nRun dbrxr-local --help for the options.");
            return ExitCode::from(2);
        }
    };
    let cluster = match LocalCluster::start(opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dbrxr-local: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("dbrxr-local listening on {}", cluster.url());
    if !token_given {
        println!("token: {}", cluster.token());
    }
    println!("cluster id: {}", cluster.cluster_id());
    println!("state dir: {}", cluster.state_dir().display());
    println!("python: {}", cluster.python());
    match cluster.runtime() {
        (Some(r), spark) => println!("runtime: {r} ({spark}), contexts and job tasks pinned to its libraries"),
        (None, spark) => println!("runtime: {spark}, libraries unpinned (--runtime pins them)"),
    }
    if let Some(w) = cluster.python_warning() {
        eprintln!("dbrxr-local: warning: {w}");
    }
    if let Some(w) = cluster.paths_missing() {
        eprintln!("dbrxr-local: warning: {w}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    wait_for_signal();
    cluster.stop();
    ExitCode::SUCCESS
}

/// Block until SIGINT or SIGTERM.
fn wait_for_signal() {
    let Ok(rt) = dbrxr::runtime::runtime() else { return };
    let _ = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), std::io::Error>(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_through_the_option_table() {
        let a = parse(&args(&["--port", "0", "--token=abc", "--cluster-state", "terminated", "--max-contexts", "3"]), None)
            .unwrap()
            .unwrap();
        assert_eq!(a.opts.token.as_deref(), Some("abc"));
        assert!(a.token_given);
        assert_eq!(a.opts.cluster_state, "TERMINATED");
        assert_eq!(a.opts.max_contexts, 3);
        let a = parse(&args(&["--data-security-mode", "user_isolation", "--readonly-staging", "dbfs:/ro/"]), None)
            .unwrap()
            .unwrap();
        assert_eq!(a.opts.data_security_mode, "USER_ISOLATION");
        assert_eq!(a.opts.readonly_staging.as_deref(), Some("dbfs:/ro/"));
        assert!(!a.token_given);
        assert!(parse(&args(&["--help"]), None).unwrap().is_none());
    }

    #[test]
    fn unknown_flags_and_invalid_values_are_clear_errors() {
        assert_eq!(parse(&args(&["--bogus"]), None).err().unwrap(), "unknown option --bogus");
        let e = parse(&args(&["--port", "x"]), None).err().unwrap();
        assert!(e.contains("`port` must be a whole number between 0 and 65535"), "{e}");
        let e = parse(&args(&["--max-contexts", "0"]), None).err().unwrap();
        assert!(e.contains("`max_contexts` must be a whole number >= 1, not 0"), "{e}");
        let e = parse(&args(&["--data-security-mode", "shared"]), None).err().unwrap();
        assert!(e.contains("USER_ISOLATION"), "{e}");
        let e = parse(&args(&["--client-id", "x"]), None).err().unwrap();
        assert!(e.contains("together"), "{e}");
    }

    #[test]
    fn the_token_comes_from_the_flag_a_file_or_the_environment() {
        let env = Some("from-env".to_string());
        let a = parse(&args(&[]), env.clone()).unwrap().unwrap();
        assert_eq!(a.opts.token.as_deref(), Some("from-env"));
        assert!(a.token_given);
        let a = parse(&args(&["--token", "flag"]), env.clone()).unwrap().unwrap();
        assert_eq!(a.opts.token.as_deref(), Some("flag"));
        let f = std::env::temp_dir().join(format!("dbrxr-token-test-{}", std::process::id()));
        std::fs::write(&f, "from-file\n").unwrap();
        let a = parse(&args(&["--token-file", f.to_str().unwrap()]), env).unwrap().unwrap();
        assert_eq!(a.opts.token.as_deref(), Some("from-file"));
        std::fs::write(&f, "\n").unwrap();
        assert!(parse(&args(&["--token-file", f.to_str().unwrap()]), None).err().unwrap().contains("empty"));
        std::fs::remove_file(&f).unwrap();
        assert!(parse(&args(&["--token-file", "/nonexistent/t"]), None).err().unwrap().contains("could not read"));
        assert!(!parse(&args(&[]), None).unwrap().unwrap().token_given);
    }

    #[test]
    fn help_lists_every_option_of_the_table() {
        let u = usage();
        for s in OPTIONS {
            assert!(u.contains(&s.flag()), "{}", s.flag());
        }
        assert!(u.contains("--token-file") && u.contains(TOKEN_ENV));
    }
}
