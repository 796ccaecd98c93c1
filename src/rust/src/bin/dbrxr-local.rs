//! `dbrxr-local`: the local cluster as a standalone server, for CI pipelines
//! and any Databricks client. First stdout line:
//! `dbrxr-local listening on http://127.0.0.1:PORT`. Runs until SIGINT or
//! SIGTERM (not tied to stdin, so it can run detached).

use std::path::PathBuf;
use std::process::ExitCode;

use dbrxr::local::{LocalCluster, LocalOptions};

const USAGE: &str = "\
Usage: dbrxr-local [options]

A Databricks-compatible local cluster (clusters, Command Execution 1.2, DBFS,
Files API, OAuth M2M) whose execution contexts are Python processes (with rpy2
for R). Binds 127.0.0.1 only.

Options:
  --port N               TCP port (0 = any free port; default 0)
  --token T              bearer token clients must send (generated and printed when absent)
  --python PATH          Python interpreter for contexts (default: DBRXR_PYTHON, else the
                         first of python3 on PATH and /usr/bin/python3 that can import rpy2)
  --state-dir DIR        where DBFS, Volumes and logs live (default: a temporary directory)
  --cluster-id ID        the cluster's id (default local-cluster)
  --cluster-state S      RUNNING or TERMINATED (default RUNNING)
  --start-delay-ms N     how long PENDING and RESTARTING last (default 0)
  --client-id ID         enable OAuth M2M with this client id...
  --client-secret S      ...and this secret
  --token-ttl-s N        lifetime of OAuth tokens (default 3600)
  --max-output-chars N   text results are cut after N characters (default 50000)
  --max-contexts N       most execution contexts at once (default 145)
  --data-security-mode M the access mode clusters/get reports (default SINGLE_USER;
                         e.g. USER_ISOLATION for a standard/shared cluster)
  --readonly-staging P   refuse DBFS/Files API writes under this prefix with 403
                         PERMISSION_DENIED (e.g. dbfs:/ro/ or /Volumes/main/ro/)
  -h, --help             show this help
";

fn parse(args: &[String]) -> Result<Option<LocalOptions>, String> {
    let mut o = LocalOptions::default();
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
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{name} must be a non-negative integer, not {v:?}"))
        }
        match name.as_str() {
            "--port" => o.port = num(&name, value()?)?,
            "--token" => o.token = Some(value()?),
            "--python" => o.python = Some(value()?),
            "--state-dir" => o.state_dir = Some(PathBuf::from(value()?)),
            "--cluster-id" => o.cluster_id = value()?,
            "--cluster-state" => o.cluster_state = value()?.to_ascii_uppercase(),
            "--start-delay-ms" => o.start_delay_ms = num(&name, value()?)?,
            "--client-id" => o.client_id = Some(value()?),
            "--client-secret" => o.client_secret = Some(value()?),
            "--token-ttl-s" => o.token_ttl_s = num(&name, value()?)?,
            "--max-output-chars" => o.max_output_chars = num(&name, value()?)?,
            "--max-contexts" => o.max_contexts = num(&name, value()?)?,
            "--data-security-mode" => o.data_security_mode = value()?.to_ascii_uppercase(),
            "--readonly-staging" => o.readonly_staging = Some(value()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("dbrxr-local: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let token_given = opts.token.is_some();
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
    if let Some(w) = cluster.python_warning() {
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

    #[test]
    fn flags_parse() {
        let a: Vec<String> = ["--port", "0", "--token=abc", "--cluster-state", "terminated", "--max-contexts", "3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse(&a).unwrap().unwrap();
        assert_eq!(o.token.as_deref(), Some("abc"));
        assert_eq!(o.cluster_state, "TERMINATED");
        assert_eq!(o.max_contexts, 3);
        assert!(parse(&["--bogus".to_string()]).is_err());
        assert!(parse(&["--port".to_string(), "x".to_string()]).is_err());
        assert!(parse(&["--help".to_string()]).unwrap().is_none());
    }
}
