//! The real `footfall` binary in a temporary directory: commands on a data directory with no
//! server, the same commands through a running server's control socket, and an orderly stop.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use footfall_testkit::{RedisCluster, RedisServer};

const BIN: &str = env!("CARGO_BIN_EXE_footfall");
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// `footfall ARGS` in `cwd`, with no footfall settings inherited from the test's environment.
fn footfall(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FOOTFALL_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("the footfall binary runs")
}

/// Stdout of a command that must succeed.
fn ok(args: &[&str], out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "footfall {args:?} failed: {}\n{stderr}", out.status);
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

/// Stderr of a command that must fail.
fn fails(args: &[&str], out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "footfall {args:?} succeeded: {stdout}");
    assert!(out.stdout.is_empty(), "footfall {args:?} printed on stdout: {stdout}");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 stderr");
    assert!(stderr.starts_with("error: "), "footfall {args:?}: {stderr}");
    stderr
}

/// A temporary directory with a data directory in it, or with a Redis of its own.
struct Workspace {
    dir: tempfile::TempDir,
    data: PathBuf,
    redis: Option<Redis>,
}

enum Redis {
    Server(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    fn url(&self) -> String {
        match self {
            Redis::Server(server) => server.url(),
            Redis::Cluster(cluster) => cluster.url(),
        }
    }
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Workspace { dir, data, redis: None }
    }

    fn on_redis() -> Workspace {
        Workspace { redis: Some(Redis::Server(RedisServer::start())), ..Workspace::new() }
    }

    fn on_cluster() -> Workspace {
        Workspace { redis: Some(Redis::Cluster(RedisCluster::start())), ..Workspace::new() }
    }

    /// Where the state is: `--data-dir DIR` or `--redis URL`.
    fn store_args(&self) -> Vec<String> {
        match &self.redis {
            Some(redis) => vec!["--redis".into(), redis.url()],
            None => vec!["--data-dir".into(), self.data.to_str().unwrap().into()],
        }
    }

    fn output(&self, args: &[&str]) -> Output {
        let store = self.store_args();
        let mut all: Vec<&str> = store.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        footfall(self.dir.path(), &all, &[])
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(args, self.output(args))
    }

    fn fails(&self, args: &[&str]) -> String {
        fails(args, self.output(args))
    }

    /// Bad input is refused with a message that names the problem, whether the command runs on
    /// the store or through a server.
    fn check_bad_input(&self) {
        let err = self.fails(&["site", "add", "example.org", "--timezone", "Mars/Olympus"]);
        assert!(err.contains("unknown timezone `Mars/Olympus`"), "{err}");
        let err = self.fails(&["site", "add", "not a domain"]);
        assert!(err.contains("`not a domain` is not a domain"), "{err}");
        let err = self.fails(&["query", "aggregate", "--site", "nope.example"]);
        assert!(err.contains("unknown site `nope.example`"), "{err}");
        let err = self.fails(&["query", "breakdown", "--site", "example.com"]);
        assert!(err.contains("property: required"), "{err}");
        let err = self.fails(&["query", "aggregate", "--site", "example.com", "--metrics", "x"]);
        assert!(err.contains("unknown metric `x`"), "{err}");
        let err = self.fails(&["key", "create", "--name", " "]);
        assert!(err.contains("name must not be empty"), "{err}");

        let config = self.dir.path().join("typo.toml");
        std::fs::write(&config, "listen = \"127.0.0.1:8420\"\ncolour = \"blue\"\n").unwrap();
        let err = self.fails(&["--config", config.to_str().unwrap(), "site", "list"]);
        assert!(err.contains("typo.toml") && err.contains("unknown field `colour`"), "{err}");
        let err = self.fails(&["--config", "missing.toml", "site", "list"]);
        assert!(err.contains("missing.toml"), "{err}");
    }
}

fn assert_is_key(stdout: &str) -> String {
    let key = stdout.strip_suffix('\n').expect("one line");
    assert!(
        key.len() == 43
            && key.starts_with("ff_")
            && key[3..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "stdout is not a key alone: {stdout:?}"
    );
    key.to_owned()
}

/// A running `footfall serve`, killed if the test fails before stopping it.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn start(ws: &Workspace) -> Server {
        // Taken from the OS and released for the server; another process could take it in
        // between, which would show as a failed start.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let log = ws.dir.path().join("server.log");
        let mut cmd = Command::new(BIN);
        cmd.current_dir(ws.dir.path())
            .args(["serve", "--listen", &addr])
            .args(ws.store_args())
            .env("FOOTFALL_FLUSH_INTERVAL_MS", "50")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        let mut server = Server { child: cmd.spawn().unwrap(), addr, log };

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("the server exited with {status}:\n{}", server.log());
            }
            if TcpStream::connect(&server.addr).is_ok() && server.get("/healthz", None).0 == 200 {
                return server;
            }
            assert!(Instant::now() < deadline, "the server did not start:\n{}", server.log());
            sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
        self.http(&format!("GET {path} HTTP/1.1\r\n{auth}"), "")
    }

    fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        self.http(
            &format!(
                "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nUser-Agent: {UA}\r\n"
            ),
            body,
        )
    }

    /// One request on its own connection; `head` is the request line and headers.
    fn http(&self, head: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let request = format!(
            "{head}Host: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(!head.to_ascii_lowercase().contains("chunked"), "unexpected chunking: {head}");
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
        (status, body.to_owned())
    }

    /// Waits until today's aggregate for `live.example` counts its one pageview, and returns
    /// the answer's body.
    fn live_pageview_counted(&self) -> String {
        let params = "site_id=live.example&period=day&metrics=visitors,pageviews";
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get(&format!("/api/v1/stats/aggregate?{params}"), None);
            assert_eq!(status, 200, "{body}");
            if body.contains(r#""pageviews":{"value":1}"#) {
                return body;
            }
            assert!(Instant::now() < deadline, "the event was not counted: {body}\n{}", self.log());
            sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and returns whether the server then exited successfully.
    fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "the server did not stop:\n{}", self.log());
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already reaped after `terminate`, in which case both calls do nothing useful.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn commands_work_with_and_without_a_running_server() {
    let ws = Workspace::new();

    // No server: the commands open the store themselves.
    ws.ok(&["site", "add", "example.com", "--timezone", "Europe/Berlin"]);
    let list = ws.ok(&["site", "list"]);
    assert!(list.contains("example.com") && list.contains("Europe/Berlin"), "{list}");
    let offline_key = assert_is_key(&ws.ok(&["key", "create", "--name", "offline"]));
    ws.check_bad_input();

    let mut server = Server::start(&ws);
    let socket = ws.data.join("footfall.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the control socket is for its owner only");

    // The data directory is locked now: the same commands go through the control socket.
    let list = ws.ok(&["site", "list"]);
    assert!(list.contains("example.com"), "{list}");
    ws.ok(&["site", "add", "live.example", "--public"]);
    let online_key = assert_is_key(&ws.ok(&["key", "create"]));
    ws.check_bad_input();
    let err = ws.fails(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(err.contains("in use by another footfall process"), "{err}");

    // Keys made either way work against the API, and the API wants one.
    let aggregate = "/api/v1/stats/aggregate?site_id=example.com";
    for key in [&offline_key, &online_key] {
        let (status, body) = server.get(aggregate, Some(key));
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(server.get(aggregate, None).0, 401);

    // A site added while the server runs takes events at once.
    let event = r#"{"site":"live.example","name":"pageview","url":"https://live.example/pricing"}"#;
    let (status, body) = server.post_json("/api/track", event);
    assert_eq!((status, body.as_str()), (202, r#"{"accepted":1,"rejected":[]}"#));

    let http_body = server.live_pageview_counted();

    // `query` answers exactly what the HTTP API answers.
    let args = ["--site", "live.example", "--period", "day", "--metrics", "visitors,pageviews"];
    let json = ws.ok(&[&["query", "aggregate", "--json"], &args[..]].concat());
    assert_eq!(json.trim_end(), http_body);
    let table = ws.ok(&[&["query", "aggregate"], &args[..]].concat());
    assert_eq!(table, "visitors  pageviews\n       1          1\n");

    let breakdown = "site_id=live.example&period=day&property=event:page&metrics=visitors";
    let (_, http_body) = server.get(&format!("/api/v1/stats/breakdown?{breakdown}"), None);
    let json = ws.ok(&[
        "query",
        "breakdown",
        "--site",
        "live.example",
        "--period",
        "day",
        "--property",
        "event:page",
        "--json",
    ]);
    assert_eq!(json.trim_end(), http_body);
    assert!(http_body.contains("/pricing"), "{http_body}");

    assert!(server.terminate(), "the server did not exit cleanly:\n{}", server.log());
    assert!(!socket.exists(), "the control socket outlived the server");

    // Everything added through the server is in the store.
    let list = ws.ok(&["site", "list"]);
    assert!(list.contains("live.example") && list.contains("example.com"), "{list}");
}

/// On Redis, and on a Redis Cluster given one node's URL, commands run on Redis itself beside
/// the server, which picks up the sites they add; a restarted server continues from Redis's
/// state.
#[test]
fn commands_work_beside_a_server_on_redis() {
    for ws in [Workspace::on_redis(), Workspace::on_cluster()] {
        commands_work_beside_a_server(&ws);
    }
}

fn commands_work_beside_a_server(ws: &Workspace) {
    ws.ok(&["site", "add", "example.com", "--timezone", "Europe/Berlin"]);
    let key = assert_is_key(&ws.ok(&["key", "create", "--name", "ci"]));
    ws.check_bad_input();
    assert!(!ws.data.exists(), "nothing is written to a data directory");

    let mut server = Server::start(ws);
    ws.ok(&["site", "add", "live.example", "--public"]);
    ws.check_bad_input();
    let aggregate = "/api/v1/stats/aggregate?site_id=example.com";
    assert_eq!(server.get(aggregate, Some(&key)).0, 200);

    // The server sees the new site within its refresh interval.
    let event = r#"{"site":"live.example","name":"pageview","url":"https://live.example/pricing"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.post_json("/api/track", event);
        if status == 202 {
            assert_eq!(body, r#"{"accepted":1,"rejected":[]}"#);
            break;
        }
        assert!(body.contains("live.example is not registered"), "{status} {body}");
        assert!(Instant::now() < deadline, "the new site was never taken: {}", server.log());
        sleep(Duration::from_millis(100));
    }
    let http_body = server.live_pageview_counted();
    let args = ["--site", "live.example", "--period", "day", "--metrics", "visitors,pageviews"];
    let json = ws.ok(&[&["query", "aggregate", "--json"], &args[..]].concat());
    assert_eq!(json.trim_end(), http_body);

    // A stopped server gives its lease back, so the next one starts at once, on the same data.
    assert!(server.terminate(), "the server did not exit cleanly:\n{}", server.log());
    let started = Instant::now();
    let server = Server::start(ws);
    assert!(started.elapsed() < Duration::from_secs(5), "the restart waited for the lease");
    assert_eq!(server.live_pageview_counted(), http_body);
}

#[test]
fn the_environment_overrides_the_file_and_flags_override_both() {
    let ws = Workspace::new();
    let cwd = ws.dir.path();
    std::fs::write(cwd.join("footfall.toml"), "data_dir = \"from-file\"\n").unwrap();
    let add = ["site", "add", "a.example"];

    ok(&add, footfall(cwd, &add, &[]));
    assert!(cwd.join("from-file").is_dir());

    ok(&add, footfall(cwd, &add, &[("FOOTFALL_DATA_DIR", "from-env")]));
    assert!(cwd.join("from-env").is_dir());

    let flagged = ["--data-dir", "from-flag", "site", "add", "a.example"];
    ok(&flagged, footfall(cwd, &flagged, &[("FOOTFALL_DATA_DIR", "from-env")]));
    assert!(cwd.join("from-flag").is_dir());

    // A bad value is reported with where it came from.
    let list = ["site", "list"];
    let err = fails(&list, footfall(cwd, &list, &[("FOOTFALL_LOG", "[[[")]));
    assert!(err.contains("FOOTFALL_LOG: `[[[` is not a log filter"), "{err}");
}

#[test]
fn migrate_moves_the_state_between_a_data_directory_and_redis() {
    let mut ws = Workspace::new();
    ws.ok(&["site", "add", "example.com"]);
    ws.ok(&["site", "add", "live.example", "--public"]);
    let key = assert_is_key(&ws.ok(&["key", "create", "--name", "ci"]));
    let mut server = Server::start(&ws);
    let (status, _) = server.post_json(
        "/api/track",
        r#"{"site":"live.example","name":"pageview","url":"https://live.example/pricing"}"#,
    );
    assert_eq!(status, 202);
    let counted = server.live_pageview_counted();

    let redis = RedisServer::start();
    let data = ws.data.to_str().unwrap().to_owned();
    let into_redis = ["migrate", "--from", &data, "--to", &redis.url()];
    let err = ws.fails(&into_redis);
    assert!(err.contains("in use by a running footfall; stop it first"), "{err}");
    assert!(server.terminate(), "{}", server.log());

    let out = ws.output(&into_redis);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 logged events and 0 events not yet counted"), "{said}");
    let err = ws.fails(&into_redis);
    assert!(err.contains("already holds footfall data"), "{err}");

    // A server on the copy answers as the original did, and knows its sites and keys.
    ws.redis = Some(Redis::Server(redis));
    let mut server = Server::start(&ws);
    assert_eq!(server.live_pageview_counted(), counted);
    assert_eq!(server.get("/api/v1/stats/aggregate?site_id=example.com", Some(&key)).0, 200);
    assert!(server.terminate(), "{}", server.log());

    // And back, into a new directory.
    let url = ws.redis.as_ref().unwrap().url();
    let back = ws.dir.path().join("back");
    ws.ok(&["migrate", "--from", &url, "--to", back.to_str().unwrap()]);
    ws.redis = None;
    ws.data = back;
    let args = ["--site", "live.example", "--period", "day", "--metrics", "visitors,pageviews"];
    let json = ws.ok(&[&["query", "aggregate", "--json"], &args[..]].concat());
    assert_eq!(json.trim_end(), counted);

    let err = ws.fails(&["migrate", "--from", "nowhere", "--to", "elsewhere"]);
    assert!(err.contains("nowhere is not a footfall data directory"), "{err}");
    assert!(!ws.dir.path().join("elsewhere").exists(), "a failed migration created its target");
}
