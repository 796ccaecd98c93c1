//! Faults the local cluster must survive: worker processes killed with
//! SIGKILL while idle and while busy, the standalone server killed during an
//! upload (nothing partial at the target, the leftover removed at the next
//! start), and a full or read-only state directory (the service's errors, and
//! recovery once space is back). The disk faults need a tmpfs, mounted in a
//! private mount namespace (`unshare -rm`); without it they are skipped with a
//! message.

mod local_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use local_support::{start, CLUSTER};
use serde_json::{json, Value};

async fn worker_pid(api: &local_support::Api, ctx: &str) -> i32 {
    let r = api.run(ctx, "import os\nos.getpid()").await;
    r["results"]["data"].as_str().unwrap().trim_start_matches("Out[1]: ").trim().parse().unwrap()
}

fn kill9(pid: i32) {
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_killed_turns_its_context_error_before_any_call() {
    let api = start(|_| {});
    let ctx = api.context().await;
    let pid = worker_pid(&api, &ctx).await;
    kill9(pid);
    // Submitted at once: refused (the context is Error), never accepted and lost.
    let r = api
        .post("/api/1.2/commands/execute",
              json!({"clusterId": CLUSTER, "contextId": ctx, "language": "python", "command": "1+1"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["error"].as_str().unwrap().contains("is in state Error"), "{}", r.body);
    assert_eq!(api.context_status(&ctx).await.body["status"], "Error");
    // A new context works.
    let ctx2 = api.context().await;
    assert_eq!(api.run(&ctx2, "1+1").await["results"]["data"], "Out[1]: 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_killed_is_noticed_without_any_request() {
    let api = start(|_| {});
    let ctx = api.context().await;
    let pid = worker_pid(&api, &ctx).await;
    kill9(pid);
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.context_status(&ctx).await.body["status"] != "Error" {
        assert!(Instant::now() < deadline, "the context never turned Error");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_killed_fails_its_command_and_the_server_goes_on() {
    let api = start(|_| {});
    let ctx = api.context().await;
    let pid = worker_pid(&api, &ctx).await;
    let cmd = api.submit(&ctx, "import time\ntime.sleep(30)").await;
    api.wait_for(&ctx, &cmd, "Running").await;
    kill9(pid);
    let s = api.wait(&ctx, &cmd).await;
    assert_eq!(s["status"], "Error", "{s}");
    assert!(s["results"]["summary"].as_str().unwrap().contains("exited unexpectedly"), "{s}");
    assert_eq!(api.context_status(&ctx).await.body["status"], "Error");
    let ctx2 = api.context().await;
    assert_eq!(api.run(&ctx2, "2+3").await["results"]["data"], "Out[1]: 5");
}

/// A standalone `dbrxr-local` (built by cargo for integration tests).
struct Standalone {
    child: Child,
    url: String,
}

impl Standalone {
    fn spawn(mut cmd: Command) -> Option<Standalone> {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().ok()?;
        let mut out = BufReader::new(child.stdout.take()?);
        let mut line = String::new();
        out.read_line(&mut line).ok()?;
        let Some(url) = line.trim().strip_prefix("dbrxr-local listening on ") else {
            let mut err = String::new();
            let _ = child.stderr.take()?.read_to_string(&mut err);
            eprintln!("dbrxr-local did not start: {line}{err}");
            let _ = child.kill();
            return None;
        };
        std::thread::spawn(move || for _ in out.lines() {});
        Some(Standalone { url: url.to_string(), child })
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dbrxr-local")
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dbrxr-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_server_killed_mid_upload_leaves_nothing_visible_and_its_leftover_is_removed_at_restart() {
    let state = temp("midupload");
    let run = || {
        let mut c = Command::new(bin());
        c.args(["--port", "0", "--token", "t", "--state-dir"]).arg(&state);
        Standalone::spawn(c).expect("dbrxr-local starts")
    };
    let mut server = run();
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let total: usize = 64 << 20;
    write!(
        s,
        "PUT /api/2.0/fs/files/Volumes/c/s/v/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: {total}\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..30 {
        s.write_all(&chunk).unwrap();
    }
    s.flush().unwrap();
    // Wait until the server has written part of it aside.
    let tmp = state.join("tmp");
    let deadline = Instant::now() + Duration::from_secs(20);
    let partial = loop {
        let size: u64 = std::fs::read_dir(&tmp).unwrap().flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum();
        if size >= 16 << 20 {
            break size;
        }
        assert!(Instant::now() < deadline, "the upload never reached the disk");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: plain syscall on our child.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGKILL) };
    let _ = server.child.wait();
    let target = state.join("fs/Volumes/c/s/v/big.bin");
    assert!(!target.exists(), "a partial upload is visible at the target");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 1, "the killed server left its upload ({partial} bytes)");
    drop(server);
    let again = run();
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the leftover upload was not removed at start-up");
    assert!(!target.exists());
    drop(again);
    std::fs::remove_dir_all(&state).unwrap();
}

/// `dbrxr-local` on a tiny tmpfs of its own (a private mount namespace), or
/// None when this machine cannot mount one.
fn on_tmpfs(dir: &Path, size: &str) -> Option<Standalone> {
    unshared_server(&format!("mount -t tmpfs -o size={size} tmpfs {d} && mkdir -p {d}/state", d = dir.display()), dir)
}

/// `dbrxr-local` with state dir `<dir>/state`, started after the shell
/// commands `setup` in a private mount namespace (`unshare -rm`); None, with
/// a SKIPPED line, when this machine does not allow one.
fn unshared_server(setup: &str, dir: &Path) -> Option<Standalone> {
    let script = format!("{setup} && exec {bin} --port 0 --token t --state-dir {d}/state", d = dir.display(), bin = bin());
    let mut c = Command::new("unshare");
    c.args(["-rm", "sh", "-c", &script]);
    let s = Standalone::spawn(c);
    if s.is_none() {
        eprintln!("SKIPPED: cannot mount in a namespace here (unshare -rm); the disk-fault tests did not run");
    }
    s
}

fn call(url: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut rb = c.request(method.parse().unwrap(), format!("{url}{path}")).bearer_auth("t");
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    })
}

#[test]
fn a_full_state_dir_gives_the_service_error_and_recovers_once_space_is_back() {
    let dir = temp("full");
    let Some(server) = on_tmpfs(&dir, "3m") else { return };
    let url = server.url.clone();
    let block = B64.encode(vec![1u8; 1 << 20]);
    let mut full = None;
    for i in 0..10 {
        let (status, body) = call(&url, "POST", "/api/2.0/dbfs/put", Some(json!({"path": format!("/f{i}"), "contents": block})));
        if status != 200 {
            full = Some((i, status, body));
            break;
        }
    }
    let (n, status, body) = full.expect("a 3 MB tmpfs filled up");
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error_code"], "IO_ERROR");
    assert!(body["message"].as_str().unwrap().contains("no space left on device"), "{body}");
    assert!(n >= 1);
    // The failed upload left nothing: neither at the target nor aside.
    let (s, _) = call(&url, "GET", &format!("/api/2.0/dbfs/get-status?path=/f{n}"), None);
    assert_eq!(s, 404);
    // Files API too (raw: the server may answer before the body is sent).
    let files_status = {
        let mut s = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
        let body = vec![0u8; 4 << 20];
        let _ = write!(s, "PUT /api/2.0/fs/files/Volumes/c/s/v/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer t\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = s.write_all(&body);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok()).unwrap_or(0)
    };
    assert_eq!(files_status, 500);
    // Still serving; free space and write again.
    assert_eq!(call(&url, "GET", "/api/2.0/clusters/get?cluster_id=local-cluster", None).0, 200);
    for i in 0..n {
        assert_eq!(call(&url, "POST", "/api/2.0/dbfs/delete", Some(json!({"path": format!("/f{i}")}))).0, 200);
    }
    let (s, b) = call(&url, "POST", "/api/2.0/dbfs/put", Some(json!({"path": "/again", "contents": block})));
    assert_eq!(s, 200, "{b}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_read_only_state_dir_gives_the_service_error_and_the_server_goes_on() {
    let dir = temp("ro");
    // The store (fs/) is a read-only bind mount; the rest of the state dir is writable.
    let setup = format!(
        "mount -t tmpfs -o size=8m tmpfs {d} && mkdir -p {d}/state/fs/dbfs && mount --bind {d}/state/fs {d}/state/fs && mount -o remount,bind,ro {d}/state/fs",
        d = dir.display()
    );
    let Some(server) = unshared_server(&setup, &dir) else { return };
    let url = server.url.clone();
    let (s, b) = call(&url, "POST", "/api/2.0/dbfs/put", Some(json!({"path": "/x", "contents": B64.encode(b"x")})));
    assert_eq!(s, 500, "{b}");
    assert_eq!(b["error_code"], "IO_ERROR");
    let (s, b) = call(&url, "POST", "/api/2.0/dbfs/mkdirs", Some(json!({"path": "/d"})));
    assert_eq!((s, b["error_code"].as_str()), (500, Some("IO_ERROR")), "{b}");
    assert!(b["message"].as_str().unwrap().contains("not writable"), "{b}");
    // Reads and everything else still work.
    assert_eq!(call(&url, "GET", "/api/2.0/dbfs/list?path=/", None).0, 200);
    assert_eq!(call(&url, "GET", "/api/2.0/clusters/get?cluster_id=local-cluster", None).0, 200);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

static SIGPIPE_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn record_sigpipe(_: libc::c_int) {
    SIGPIPE_SEEN.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Inside R, SIGPIPE runs R's handler, which crashes the session when the
/// signal lands on a thread that is not R's. The runtime's threads (the
/// server's and the client's) must never get it: a write to a pipe whose
/// reader is gone fails with EPIPE instead. A handler like R's records any
/// delivery here.
#[test]
fn a_write_to_a_dead_pipe_on_runtime_threads_raises_no_sigpipe() {
    // SAFETY: installs a handler that only stores to an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = record_sigpipe as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut()), 0);
    }
    let rt = dbrxr::runtime::runtime().unwrap();
    let write_to_dead_pipe = || {
        let mut fds = [0; 2];
        // SAFETY: plain syscalls on fds we own.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[0]);
            let n = libc::write(fds[1], b"x".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error().raw_os_error();
            libc::close(fds[1]);
            (n, err)
        }
    };
    let on_worker = rt.block_on(async move { tokio::spawn(async move { write_to_dead_pipe() }).await.unwrap() });
    let on_blocking = rt.block_on(async move { tokio::task::spawn_blocking(write_to_dead_pipe).await.unwrap() });
    assert_eq!(on_worker, (-1, Some(libc::EPIPE)));
    assert_eq!(on_blocking, (-1, Some(libc::EPIPE)));
    std::thread::sleep(Duration::from_millis(50));
    assert!(!SIGPIPE_SEEN.load(std::sync::atomic::Ordering::SeqCst), "SIGPIPE reached a handler");
}
