//! What the tests of the `footfall` binary share: a temporary workspace with a data directory
//! or a Redis of its own, the binary run on it, and a running `footfall serve`.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use footfall_testkit::{ChromeDriver, RedisCluster, RedisServer};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_footfall");
pub const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// `footfall ARGS` in `cwd`, with no footfall settings inherited from the test's environment.
pub fn footfall(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(cwd, args);
    cmd.stdin(Stdio::null()).envs(env.iter().copied());
    cmd.output().expect("the footfall binary runs")
}

/// A timezone in which it is now about noon. A site in it keeps a test's few minutes of
/// traffic, and the test's questions about "today", within one day whenever the test runs.
pub fn noon_timezone() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let offset = 12 - (now.as_secs() / 3600 % 24) as i64;
    // POSIX signs: `Etc/GMT-5` is five hours ahead of UTC.
    format!("Etc/GMT{:+}", -offset)
}

fn command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FOOTFALL_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Stdout of a command that must succeed.
pub fn ok(args: &[&str], out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "footfall {args:?} failed: {}\n{stderr}", out.status);
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

/// Stderr of a command that must fail.
pub fn fails(args: &[&str], out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "footfall {args:?} succeeded: {stdout}");
    assert!(out.stdout.is_empty(), "footfall {args:?} printed on stdout: {stdout}");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 stderr");
    assert!(stderr.starts_with("error: "), "footfall {args:?}: {stderr}");
    stderr
}

/// A temporary directory with a data directory in it, or with a Redis of its own.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub redis: Option<Redis>,
}

pub enum Redis {
    Server(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    pub fn url(&self) -> String {
        match self {
            Redis::Server(server) => server.url(),
            Redis::Cluster(cluster) => cluster.url(),
        }
    }
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Workspace { dir, data, redis: None }
    }

    pub fn on_redis() -> Workspace {
        Workspace { redis: Some(Redis::Server(RedisServer::start())), ..Workspace::new() }
    }

    pub fn on_cluster() -> Workspace {
        Workspace { redis: Some(Redis::Cluster(RedisCluster::start())), ..Workspace::new() }
    }

    /// Where the state is: `--data-dir DIR` or `--redis URL`.
    pub fn store_args(&self) -> Vec<String> {
        match &self.redis {
            Some(redis) => vec!["--redis".into(), redis.url()],
            None => vec!["--data-dir".into(), self.data.to_str().unwrap().into()],
        }
    }

    pub fn output(&self, args: &[&str]) -> Output {
        let store = self.store_args();
        let mut all: Vec<&str> = store.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        footfall(self.dir.path(), &all, &[])
    }

    /// `footfall ARGS` on the workspace's store, with `stdin` as its standard input.
    pub fn with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = command(self.dir.path(), &[]);
        cmd.args(self.store_args()).args(args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the footfall binary runs");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(args, self.output(args))
    }

    pub fn fails(&self, args: &[&str]) -> String {
        fails(args, self.output(args))
    }
}

/// A running `footfall serve`, killed if the test fails before stopping it.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl Server {
    pub fn start(ws: &Workspace) -> Server {
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

        // A debug build reopens a store of a month's events slowly.
        let deadline = Instant::now() + Duration::from_secs(90);
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
        self.http(&format!("GET {path} HTTP/1.1\r\n{auth}"), "")
    }

    pub fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        self.http(
            &format!(
                "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nUser-Agent: {UA}\r\n"
            ),
            body,
        )
    }

    /// One request on its own connection; `head` is the request line and headers.
    pub fn http(&self, head: &str, body: &str) -> (u16, String) {
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
    pub fn live_pageview_counted(&self) -> String {
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

    /// Waits until `check` holds for the answer to `GET path`, and returns that answer.
    pub fn wait_for(&self, path: &str, key: Option<&str>, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get(path, key);
            assert_eq!(status, 200, "{path}: {body}");
            let answer: Value = serde_json::from_str(&body).unwrap();
            if check(&answer) {
                return answer;
            }
            assert!(Instant::now() < deadline, "{path} never gave the expected answer: {answer}");
            sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and returns whether the server then exited successfully.
    pub fn terminate(&mut self) -> bool {
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

/// A WebDriver session in headless Chromium, introducing itself as `user_agent` if given.
pub async fn browser(driver: &ChromeDriver, user_agent: Option<&str>) -> Client {
    let ua = user_agent.map(|ua| format!("--user-agent={ua}"));
    let args: Vec<&str> = ua.iter().map(String::as_str).collect();
    let caps: Value = serde_json::from_str(&ChromeDriver::capabilities(&args)).unwrap();
    let Value::Object(caps) = caps else { unreachable!("capabilities are an object") };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .expect("a WebDriver session in headless Chromium")
}

/// Waits until a JavaScript condition holds in the page.
pub async fn wait_until(c: &Client, condition: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let script = format!("return !!({condition})");
    while c.execute(&script, vec![]).await.unwrap() != json!(true) {
        assert!(Instant::now() < deadline, "the page never reached `{condition}`");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
