//! The `dbrxr-local` binary as CI runs it: where its token comes from, and
//! the state directory a killed server leaves behind (what its processes do
//! when it is killed: local_security.rs).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use dbrxr::local::{LocalCluster, LocalOptions};

mod local_support;

const BIN: &str = env!("CARGO_BIN_EXE_dbrxr-local");

/// Every start of a server removes the state dirs that dead servers left, so
/// the tests here run one at a time: another test's start would remove the
/// killed server's dir before the test looks at it.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Start the binary; its stdout lines up to the python line (the last one).
/// Callers kill and wait for it.
#[allow(clippy::zombie_processes)]
fn start(cmd: &mut Command) -> (Child, Vec<String>) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("dbrxr-local starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        assert!(out.read_line(&mut l).unwrap() > 0, "dbrxr-local ended early: {lines:?}");
        let done = l.starts_with("python:");
        lines.push(l.trim_end().to_string());
        if done {
            return (child, lines);
        }
    }
}

fn field<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| l.strip_prefix(prefix))
}

#[test]
fn the_token_from_the_environment_works_and_shows_neither_in_ps_nor_in_the_output() {
    let _serial = one_at_a_time();
    let secret = "dapi-from-env-7f3a";
    let (mut child, lines) = start(Command::new(BIN).args(["--port", "0"]).env("DBRXR_LOCAL_TOKEN", secret));
    let url = field(&lines, "dbrxr-local listening on ").expect("url line").to_string();
    assert!(field(&lines, "token:").is_none(), "a given token is not printed: {lines:?}");
    assert!(!lines.iter().any(|l| l.contains(secret)));
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(secret));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = |token: &'static str| {
        let url = format!("{url}/api/2.0/clusters/list");
        rt.block_on(async move {
            reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
        })
    };
    assert_eq!(status(secret), 200);
    assert_eq!(status("dapi-other"), 403);
    child.kill().unwrap();
    child.wait().unwrap();

    // And from a file.
    let file = std::env::temp_dir().join(format!("dbrxr-bin-token-{}", std::process::id()));
    std::fs::write(&file, "dapi-from-file\n").unwrap();
    let (mut child, lines) = start(Command::new(BIN).arg("--token-file").arg(&file).env_remove("DBRXR_LOCAL_TOKEN"));
    let url = field(&lines, "dbrxr-local listening on ").unwrap().to_string();
    let code = rt.block_on(async move {
        let r = reqwest::Client::new().get(format!("{url}/api/2.0/clusters/list")).bearer_auth("dapi-from-file");
        r.send().await.unwrap().status().as_u16()
    });
    assert_eq!(code, 200);
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn a_state_dir_left_by_a_server_killed_with_sigkill_is_removed_by_the_next_start() {
    let _serial = one_at_a_time();
    let (mut child, lines) = start(Command::new(BIN).args(["--token", "t"]));
    let dir = std::path::PathBuf::from(field(&lines, "state dir: ").expect("state dir line"));
    assert!(dir.is_dir());
    child.kill().unwrap(); // SIGKILL; not reaped yet: a zombie, as a killed R is until its parent waits
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(dir.is_dir(), "nothing removes it before a next start");
    let next = LocalCluster::start(LocalOptions::default()).unwrap();
    assert!(!dir.exists(), "the next start removes {}", dir.display());
    assert!(next.state_dir().is_dir(), "and keeps its own");
    child.wait().unwrap();
}
