//! DBFS 2.0 and the Files API of the local cluster: limits, handles and
//! their expiry, error codes and messages, ranges, listing, path rejection.

mod local_support;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use local_support::{start, Resp, CLUSTER};
use reqwest::Method;
use serde_json::json;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbfs_put_read_status_list_with_limits() {
    let api = start(|_| {});
    let r = api.post("/api/2.0/dbfs/put", json!({"path": "/tmp/a.txt", "contents": B64.encode(b"hello world")})).await;
    assert_eq!((r.status, r.body), (200, json!({})));
    let r = api.post("/api/2.0/dbfs/put", json!({"path": "dbfs:/tmp/a.txt", "contents": ""})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error_code"], "RESOURCE_ALREADY_EXISTS");
    assert_eq!(r.body["message"], "A file or directory already exists at the input path dbfs:/tmp/a.txt.");
    let r = api.get("/api/2.0/dbfs/read?path=/tmp/a.txt&offset=6&length=100").await;
    assert_eq!(r.body, json!({"bytes_read": 5, "data": B64.encode(b"world")}));
    let r = api.get("/api/2.0/dbfs/read?path=/tmp/a.txt&offset=11").await;
    assert_eq!(r.body, json!({"bytes_read": 0, "data": ""}));
    // brickster sends a JSON body on GET.
    let r = api.send(api.req(Method::GET, "/api/2.0/dbfs/read").json(&json!({"path": "/tmp/a.txt", "length": 5}))).await;
    assert_eq!(r.body["data"], B64.encode(b"hello"));
    let r = api.get(&format!("/api/2.0/dbfs/read?path=/tmp/a.txt&length={}", MIB + 1)).await;
    assert_eq!(r.body["error_code"], "MAX_READ_SIZE_EXCEEDED");
    let r = api.get("/api/2.0/dbfs/read?path=/tmp/a.txt&offset=-1").await;
    assert_eq!(r.body["error_code"], "INVALID_PARAMETER_VALUE");
    let r = api.get("/api/2.0/dbfs/read?path=/tmp").await;
    assert_eq!(r.body["error_code"], "INVALID_PARAMETER_VALUE");
    let r = api.get("/api/2.0/dbfs/read?path=/tmp/missing.rds").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No file or directory exists on path /tmp/missing.rds."})
    );
    let big = B64.encode(vec![0u8; MIB + 1]);
    let r = api.post("/api/2.0/dbfs/put", json!({"path": "/tmp/big", "contents": big})).await;
    assert_eq!(r.body["error_code"], "MAX_BLOCK_SIZE_EXCEEDED");
    let exact = B64.encode(vec![1u8; MIB]);
    let r = api.post("/api/2.0/dbfs/put", json!({"path": "/tmp/exact", "contents": exact, "overwrite": "true"})).await;
    assert_eq!(r.status, 200);
    let r = api.get("/api/2.0/dbfs/get-status?path=/tmp/exact").await;
    assert_eq!(r.body["file_size"], MIB);
    assert_eq!(r.body["is_dir"], false);
    assert!(r.body["modification_time"].as_u64().unwrap() > 1_600_000_000_000);
    let r = api.get("/api/2.0/dbfs/list?path=/tmp").await;
    let paths: Vec<&str> = r.body["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/tmp/a.txt", "/tmp/exact"]);
    let r = api.get("/api/2.0/dbfs/list?path=/tmp/a.txt").await;
    assert_eq!(r.body["files"][0]["path"], "/tmp/a.txt");
    api.post("/api/2.0/dbfs/mkdirs", json!({"path": "/empty/dir"})).await;
    assert_eq!(api.get("/api/2.0/dbfs/list?path=/empty/dir").await.body, json!({}));
    // Multipart put with a file part (no 1 MiB limit there).
    let (ctype, body) = local_support::multipart(&[("path", "/tmp/mp.bin"), ("overwrite", "true")], Some(("contents", &vec![9u8; MIB + 10])));
    let r = api.send(api.req(Method::POST, "/api/2.0/dbfs/put").header("content-type", ctype).body(body)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(api.get("/api/2.0/dbfs/get-status?path=/tmp/mp.bin").await.body["file_size"], MIB + 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbfs_streaming_handles_and_their_expiry() {
    let api = start(|o| o.dbfs_handle_ttl_s = 1);
    let r = api.post("/api/2.0/dbfs/create", json!({"path": "/up/file.bin", "overwrite": true})).await;
    let h = r.body["handle"].as_i64().unwrap();
    let blocks: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; MIB]).collect();
    for b in &blocks {
        let r = api.post("/api/2.0/dbfs/add-block", json!({"handle": h, "data": B64.encode(b)})).await;
        assert_eq!(r.status, 200);
    }
    // Not visible before close.
    assert_eq!(api.get("/api/2.0/dbfs/get-status?path=/up/file.bin").await.status, 404);
    let r = api.post("/api/2.0/dbfs/add-block", json!({"handle": h, "data": B64.encode(vec![0u8; MIB + 1])})).await;
    assert_eq!(r.body["error_code"], "MAX_BLOCK_SIZE_EXCEEDED");
    assert_eq!(api.post("/api/2.0/dbfs/close", json!({"handle": h})).await.status, 200);
    let mut back = Vec::new();
    let mut offset = 0;
    loop {
        let r = api.get(&format!("/api/2.0/dbfs/read?path=/up/file.bin&offset={offset}&length={MIB}")).await;
        let n = r.body["bytes_read"].as_u64().unwrap() as usize;
        if n == 0 {
            break;
        }
        back.extend(B64.decode(r.body["data"].as_str().unwrap()).unwrap());
        offset += n;
    }
    assert_eq!(back, blocks.concat());
    let r = api.post("/api/2.0/dbfs/close", json!({"handle": h})).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error_code"], "RESOURCE_DOES_NOT_EXIST");
    let r = api.post("/api/2.0/dbfs/add-block", json!({"handle": 999, "data": ""})).await;
    assert_eq!(r.body["error_code"], "RESOURCE_DOES_NOT_EXIST");
    // Existing path without overwrite.
    let r = api.post("/api/2.0/dbfs/create", json!({"path": "/up/file.bin"})).await;
    assert_eq!(r.body["error_code"], "RESOURCE_ALREADY_EXISTS");
    // An idle handle expires.
    let r = api.post("/api/2.0/dbfs/create", json!({"path": "/up/late.bin"})).await;
    let h = r.body["handle"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = api.post("/api/2.0/dbfs/add-block", json!({"handle": h, "data": B64.encode(b"x")})).await;
    assert_eq!(r.body["error_code"], "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbfs_mkdirs_delete_move() {
    let api = start(|_| {});
    api.post("/api/2.0/dbfs/put", json!({"path": "/d/f", "contents": B64.encode(b"1")})).await;
    let r = api.post("/api/2.0/dbfs/mkdirs", json!({"path": "/d/f/sub"})).await;
    assert_eq!(r.body["error_code"], "RESOURCE_ALREADY_EXISTS");
    assert_eq!(api.post("/api/2.0/dbfs/mkdirs", json!({"path": "/d/x/y"})).await.status, 200);
    let r = api.post("/api/2.0/dbfs/delete", json!({"path": "/d"})).await;
    assert_eq!(r.body["error_code"], "IO_ERROR");
    let r = api.post("/api/2.0/dbfs/move", json!({"source_path": "/d/f", "destination_path": "/d/x"})).await;
    assert_eq!(r.body["error_code"], "RESOURCE_ALREADY_EXISTS");
    let r = api.post("/api/2.0/dbfs/move", json!({"source_path": "/nope", "destination_path": "/d/z"})).await;
    assert_eq!(r.status, 404);
    let r = api.post("/api/2.0/dbfs/move", json!({"source_path": "/d/x", "destination_path": "/e/x"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(api.get("/api/2.0/dbfs/get-status?path=/e/x/y").await.body["is_dir"], true);
    assert_eq!(api.post("/api/2.0/dbfs/delete", json!({"path": "/d", "recursive": true})).await.status, 200);
    assert_eq!(api.get("/api/2.0/dbfs/get-status?path=/d").await.status, 404);
    // Deleting nothing succeeds.
    assert_eq!(api.post("/api/2.0/dbfs/delete", json!({"path": "/d"})).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_api_put_get_head_delete_range_and_directories() {
    let api = start(|_| {});
    let data: Vec<u8> = (0..=255u8).cycle().take(3 * MIB + 7).collect();
    let path = "/api/2.0/fs/files/Volumes/main/default/vol/deep/er/x%20y.bin";
    let r = api.send(api.req(Method::PUT, path).body(data.clone())).await;
    assert_eq!(r.status, 204);
    assert!(r.raw.is_empty());
    let r = api.send(api.req(Method::PUT, &format!("{path}?overwrite=false")).body("z")).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error_code"], "ALREADY_EXISTS");
    let r = api.get(path).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.raw.len(), data.len());
    assert!(r.raw[..] == data[..]);
    assert_eq!(r.headers["content-length"], data.len().to_string().as_str());
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    let lm = r.headers["last-modified"].to_str().unwrap().to_string();
    assert!(httpdate::parse_http_date(&lm).is_ok(), "{lm}");
    let r = api.send(api.req(Method::HEAD, path)).await;
    assert_eq!(r.status, 200);
    assert!(r.raw.is_empty());
    assert_eq!(r.headers["content-length"], data.len().to_string().as_str());
    let r = api.send(api.req(Method::GET, path).header("range", "bytes=10-19")).await;
    assert_eq!(r.status, 206);
    assert!(r.raw[..] == data[10..20]);
    assert_eq!(r.headers["content-range"], format!("bytes 10-19/{}", data.len()).as_str());
    let r = api.send(api.req(Method::GET, path).header("range", "bytes=-5")).await;
    assert!(r.raw[..] == data[data.len() - 5..]);
    let r = api.send(api.req(Method::GET, path).header("range", format!("bytes={}-", data.len()))).await;
    assert_eq!(r.status, 416);
    let r = api.send(api.req(Method::GET, path).header("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT")).await;
    assert_eq!(r.status, 412);
    let r = api.send(api.req(Method::GET, path).header("if-unmodified-since", lm)).await;
    assert_eq!(r.status, 200);
    // The file is where the cluster sees it.
    assert!(api.c.fs_root().join("Volumes/main/default/vol/deep/er/x y.bin").is_file());

    // Directories: list with paging, create, head, delete only when empty.
    for i in 0..3 {
        api.send(api.req(Method::PUT, &format!("/api/2.0/fs/files/Volumes/main/default/vol/d/f{i}")).body("x")).await;
    }
    let r = api.get("/api/2.0/fs/directories/Volumes/main/default/vol/d?page_size=2").await;
    assert_eq!(r.body["contents"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["contents"][0]["path"], "/Volumes/main/default/vol/d/f0");
    assert_eq!(r.body["contents"][0]["name"], "f0");
    assert_eq!(r.body["contents"][0]["is_directory"], false);
    assert_eq!(r.body["contents"][0]["file_size"], 1);
    let tok = r.body["next_page_token"].as_str().unwrap().to_string();
    let r = api.get(&format!("/api/2.0/fs/directories/Volumes/main/default/vol/d?page_size=2&page_token={tok}")).await;
    assert_eq!(r.body["contents"][0]["name"], "f2");
    assert!(r.body.get("next_page_token").is_none());
    assert_eq!(api.send(api.req(Method::PUT, "/api/2.0/fs/directories/Volumes/main/default/vol/new/a")).await.status, 204);
    assert_eq!(api.send(api.req(Method::HEAD, "/api/2.0/fs/directories/Volumes/main/default/vol/new/a")).await.status, 200);
    assert_eq!(api.send(api.req(Method::HEAD, "/api/2.0/fs/directories/Volumes/main/default/vol/none")).await.status, 404);
    let r = api.send(api.req(Method::DELETE, "/api/2.0/fs/directories/Volumes/main/default/vol/d")).await;
    assert_eq!(r.body["error_code"], "DIRECTORY_NOT_EMPTY");
    for i in 0..3 {
        let r = api.send(api.req(Method::DELETE, &format!("/api/2.0/fs/files/Volumes/main/default/vol/d/f{i}"))).await;
        assert_eq!(r.status, 204);
    }
    assert_eq!(api.send(api.req(Method::DELETE, "/api/2.0/fs/directories/Volumes/main/default/vol/d")).await.status, 204);
    let r = api.get("/api/2.0/fs/files/Volumes/main/default/vol/d/f0").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error_code"], "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_store_are_rejected() {
    let api = start(|_| {});
    // A file outside the store that an escape would reach.
    let secret = api.c.state_dir().join("outside.txt");
    std::fs::write(&secret, "secret").unwrap();
    for p in ["/../outside.txt", "/tmp/../../outside.txt", "dbfs:/../outside.txt", "relative.txt"] {
        let r = api.get(&format!("/api/2.0/dbfs/read?path={}", urlencode(p))).await;
        assert_eq!(r.status, 400, "{p}: {:?}", r.body);
        assert_eq!(r.body["error_code"], "INVALID_PARAMETER_VALUE");
        let r = api.post("/api/2.0/dbfs/put", json!({"path": p, "contents": ""})).await;
        assert_eq!(r.status, 400, "{p}");
    }
    let r = api.post("/api/2.0/dbfs/move", json!({"source_path": "/a", "destination_path": "/../../x"})).await;
    assert_eq!(r.status, 400);
    for p in [
        "/api/2.0/fs/files/Volumes/c/s/v/%2E%2E/%2E%2E/%2E%2E/%2E%2E/outside.txt",
        "/api/2.0/fs/files/Volumes/c/s/v/..%2F..%2F..%2F..%2Foutside.txt",
        "/api/2.0/fs/files/tmp/outside.txt",
        "/api/2.0/fs/files/Volumes/c/s",
    ] {
        let r = api.get(p).await;
        assert_eq!(r.status, 400, "{p}: {:?}", r.body);
        let r = api.send(api.req(Method::PUT, p).body("x")).await;
        assert_eq!(r.status, 400, "{p}");
    }
    let r = api.get("/api/2.0/fs/directories/Volumes/c/s/v/..%2F..").await;
    assert_eq!(r.status, 400);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret");
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_staging_refuses_writes_with_permission_denied() {
    let a = start(|o| o.readonly_staging = Some("dbfs:/ro/".into()));
    let denied = |r: &Resp| r.status == 403 && r.body["error_code"] == "PERMISSION_DENIED";
    let put = |p: &str| json!({"path": p, "contents": "aGk=", "overwrite": true});
    let r = a.post("/api/2.0/dbfs/put", put("dbfs:/ro/x.bin")).await;
    assert!(denied(&r), "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("dbfs:/ro/x.bin"));
    for (route, body) in [
        ("/api/2.0/dbfs/create", json!({"path": "/ro/y"})),
        ("/api/2.0/dbfs/mkdirs", json!({"path": "/ro/d"})),
        ("/api/2.0/dbfs/delete", json!({"path": "/ro", "recursive": true})),
        ("/api/2.0/dbfs/move", json!({"source_path": "/rw/a", "destination_path": "/ro/a"})),
    ] {
        let r = a.post(route, body).await;
        assert!(denied(&r), "{route}: {:?}", r.body);
    }
    // Next to it (and a sibling that merely shares the prefix) writes work.
    assert_eq!(a.post("/api/2.0/dbfs/put", put("/rw/a")).await.status, 200);
    assert_eq!(a.post("/api/2.0/dbfs/put", put("/rox/a")).await.status, 200);
    // Reading under it works: the location is readable, not writable.
    let r = a.get("/api/2.0/dbfs/get-status?path=/ro").await;
    assert_eq!(r.status, 404, "{:?}", r.body);

    let v = start(|o| o.readonly_staging = Some("/Volumes/main/ro/".into()));
    let r = v.send(v.req(reqwest::Method::PUT, "/api/2.0/fs/files/Volumes/main/ro/v/x.bin").body("hi")).await;
    assert!(denied(&r), "{:?}", r.body);
    assert_eq!(r.body["message"], "User does not have WRITE VOLUME on Volume 'main.ro.v'.");
    let r = v.send(v.req(reqwest::Method::PUT, "/api/2.0/fs/directories/Volumes/main/ro/v/d")).await;
    assert!(denied(&r), "{:?}", r.body);
    let r = v.send(v.req(reqwest::Method::PUT, "/api/2.0/fs/files/Volumes/main/rw/v/x.bin").body("hi")).await;
    assert_eq!(r.status, 204);
    // DBFS is not under a volume prefix.
    assert_eq!(v.post("/api/2.0/dbfs/put", put("/Volumes/main/ro/v/x")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_security_mode_is_what_clusters_get_reports() {
    let a = start(|_| {});
    let r = a.get(&format!("/api/2.1/clusters/get?cluster_id={CLUSTER}")).await;
    assert_eq!(r.body["data_security_mode"], "SINGLE_USER");
    assert!(r.body["single_user_name"].is_string());
    let s = start(|o| o.data_security_mode = "USER_ISOLATION".into());
    let r = s.get(&format!("/api/2.1/clusters/get?cluster_id={CLUSTER}")).await;
    assert_eq!(r.body["data_security_mode"], "USER_ISOLATION");
    assert!(r.body.get("single_user_name").is_none(), "{:?}", r.body);
    let e = dbrxr::local::LocalCluster::start(dbrxr::local::LocalOptions {
        data_security_mode: "SHARED_PLEASE".into(),
        ..Default::default()
    })
    .err()
    .unwrap();
    assert_eq!(e.kind, dbrxr::ErrorKind::Input);
    assert!(e.message.contains("USER_ISOLATION"), "{}", e.message);
    let e = dbrxr::local::LocalCluster::start(dbrxr::local::LocalOptions {
        readonly_staging: Some("ro".into()),
        ..Default::default()
    })
    .err()
    .unwrap();
    assert_eq!(e.kind, dbrxr::ErrorKind::Input);
}
