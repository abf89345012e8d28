//! Test support shared by footfall's crates: a real `redis-server`, started for one test on a
//! free port in a temporary directory and stopped when the test drops it. Tests never depend on
//! a server that happens to be running; when `redis-server` is missing they fail and say how to
//! install it, rather than skipping.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The hash slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// How long a starting redis-server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A `redis-server` of this test's own. Dropping it kills the process and deletes its directory.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a redis-server that keeps nothing on disk.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a redis-server with extra configuration arguments (such as
    /// `["--appendonly", "yes"]`), on a free port, in a fresh directory.
    pub fn start_with(args: &[&str]) -> RedisServer {
        let dir = TempDir::new().expect("a temporary directory for redis-server");
        // A port can be taken between finding it free and redis binding it; try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut child = match spawn(dir.path(), port, args) {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "redis-server is not installed, and footfall's Redis tests need it: install \
                     it (on Debian or Ubuntu: `sudo apt-get install -y redis-server`), or run \
                     scripts/test, which does"
                ),
                Err(e) => panic!("cannot start redis-server: {e}"),
            };
            let deadline = Instant::now() + START_TIMEOUT;
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait().expect("redis-server status") {
                    let log = std::fs::read_to_string(dir.path().join("redis.log"));
                    if log.as_deref().unwrap_or("").contains("Address already in use") {
                        break;
                    }
                    panic!("redis-server exited at start ({status}): {}", log.unwrap_or_default());
                }
                if ping(port) {
                    return RedisServer { child: Some(child), port, dir };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start and answer PING within {START_TIMEOUT:?}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's working directory (its log is `redis.log` there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server now (SIGKILL), as an outage would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory after [`kill`](Self::kill).
    pub fn restart(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "restart follows kill");
        let child = spawn(self.dir.path(), self.port, args).expect("redis-server restarts");
        let deadline = Instant::now() + START_TIMEOUT;
        while !ping(self.port) {
            assert!(Instant::now() < deadline, "redis-server did not come back");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }

    /// Opens a connection, for a test sending many commands (one connect each would dominate).
    pub fn connect(&self) -> Connection {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        // Each request goes out in one write and waits for its reply: never hold it back.
        stream.set_nodelay(true).expect("nodelay");
        Connection { stream: BufReader::new(stream) }
    }

    /// Sends one command on a new connection and returns the reply as text, for checks such as
    /// `INFO commandstats` without a client library (see [`Connection::command`]).
    pub fn command(&self, words: &[&str]) -> String {
        self.connect().command(words)
    }

    /// Sends one binary-safe command on a new connection (see [`Connection::command_bytes`]).
    pub fn command_bytes(&self, words: &[&[u8]]) -> Vec<u8> {
        self.connect().command_bytes(words)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three primaries, each a [`RedisServer`] of its own serving a third of
/// the 16384 slots. Dropping it stops them all.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Each node's arguments, to restart it as it was.
    args: Vec<Vec<String>>,
}

impl RedisCluster {
    /// Starts a cluster that keeps nothing on disk.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts the three servers with extra configuration arguments (as
    /// [`RedisServer::start_with`]), gives each its slots, introduces them, and waits until
    /// every one says the cluster is up.
    pub fn start_with(args: &[&str]) -> RedisCluster {
        let mut nodes = Vec::new();
        let mut buses = Vec::new();
        let mut all_args = Vec::new();
        for _ in 0..3 {
            // Set, because the default (the port + 10000) may be beyond 65535.
            let bus = free_port().to_string();
            let cluster = ["--cluster-enabled", "yes", "--cluster-port", &bus];
            let args: Vec<String> = args.iter().chain(&cluster).map(|&a| a.to_owned()).collect();
            nodes.push(RedisServer::start_with(
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            ));
            buses.push(bus);
            all_args.push(args);
        }
        for (i, node) in nodes.iter().enumerate() {
            let slots: Vec<String> =
                (i * SLOTS / 3..(i + 1) * SLOTS / 3).map(|slot| slot.to_string()).collect();
            let words: Vec<&str> = ["CLUSTER", "ADDSLOTS"]
                .into_iter()
                .chain(slots.iter().map(String::as_str))
                .collect();
            assert_eq!(node.command(&words), "OK", "CLUSTER ADDSLOTS");
            let port = node.port().to_string();
            let meet = ["CLUSTER", "MEET", "127.0.0.1", &port, &buses[i]];
            assert_eq!(nodes[0].command(&meet), "OK", "CLUSTER MEET");
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for node in &nodes {
            loop {
                let info = node.command(&["CLUSTER", "INFO"]);
                if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not come up: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes, args: all_args }
    }

    /// The node serving `key`'s slot.
    pub fn node_of(&self, key: &str) -> usize {
        let slot: usize =
            self.nodes[0].command(&["CLUSTER", "KEYSLOT", key]).parse().expect("slot");
        let n = self.nodes.len();
        (0..n).find(|i| slot < (i + 1) * SLOTS / n).expect("a slot below 16384")
    }

    /// Stops node `i` (SIGKILL), as an outage would.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again after [`kill`](Self::kill); it rejoins with the slots it had.
    pub fn restart(&mut self, i: usize) {
        let args: Vec<&str> = self.args[i].iter().map(String::as_str).collect();
        self.nodes[i].restart(&args);
    }

    /// The URL of one node, from which a cluster client learns the others.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// One connection to a [`RedisServer`], for many commands in a row.
pub struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    /// Sends one command and returns the reply as text (lossily, where it is not UTF-8).
    pub fn command(&mut self, words: &[&str]) -> String {
        let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        String::from_utf8_lossy(&self.command_bytes(&words)).into_owned()
    }

    /// Sends one command whose words may be any bytes (such as a HyperLogLog for `SET`) and
    /// returns the reply's raw bytes: a bulk string as is, `""` for nil, the text of a simple,
    /// error or integer reply without its type byte, and array elements joined by `\n`.
    pub fn command_bytes(&mut self, words: &[&[u8]]) -> Vec<u8> {
        let mut request = format!("*{}\r\n", words.len()).into_bytes();
        for w in words {
            request.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
            request.extend_from_slice(w);
            request.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&request).expect("send");
        read_reply(&mut self.stream)
    }
}

fn spawn(dir: &Path, port: u16, args: &[&str]) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .args(["--logfile", "redis.log", "--daemonize", "no"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// One RESP2 reply, bulk strings and arrays flattened into lines.
fn read_reply(r: &mut impl BufRead) -> Vec<u8> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).expect("reply");
    let Some((&kind, rest)) = line.split_first() else {
        panic!("redis-server closed the connection instead of replying");
    };
    let rest = rest.strip_suffix(b"\r\n").unwrap_or(rest);
    let number = || std::str::from_utf8(rest).ok().and_then(|n| n.parse::<i64>().ok());
    match kind {
        b'$' => {
            let Ok(len) = usize::try_from(number().expect("bulk length")) else {
                return Vec::new(); // $-1: nil
            };
            let mut body = vec![0; len + 2];
            r.read_exact(&mut body).expect("bulk body");
            body.truncate(len);
            body
        }
        b'*' => {
            let n = number().expect("array length").max(0);
            (0..n).map(|_| read_reply(r)).collect::<Vec<_>>().join(&b'\n')
        }
        _ => rest.to_owned(),
    }
}

/// Where Debian's `chromium` package puts the browser; `CHROMIUM` overrides it.
const CHROMIUM: &str = "/usr/bin/chromium";

/// A `chromedriver` of this test's own, driving headless Chromium through WebDriver on a free
/// port. Dropping it stops the driver (and the browsers it started).
pub struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    pub fn start() -> ChromeDriver {
        let install = "install them (on Debian or Ubuntu: `sudo apt-get install -y chromium \
                       chromium-driver`), or run scripts/test, which does";
        assert!(
            Path::new(&chromium_binary()).exists(),
            "Chromium is not installed at {}, and footfall's browser tests need it: {install}",
            chromium_binary()
        );
        for _ in 0..5 {
            let port = free_port();
            let mut child = match Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    panic!(
                        "chromedriver is not installed, and footfall's browser tests need it: {install}"
                    )
                }
                Err(e) => panic!("cannot start chromedriver: {e}"),
            };
            let deadline = Instant::now() + START_TIMEOUT;
            while Instant::now() < deadline {
                if child.try_wait().expect("chromedriver status").is_some() {
                    break; // The port was taken: try another.
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return ChromeDriver { child, port };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("chromedriver did not start within {START_TIMEOUT:?}");
    }

    /// The WebDriver endpoint, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// WebDriver capabilities for headless Chromium with `args` added to its command line.
    pub fn capabilities(args: &[&str]) -> String {
        let mut all =
            vec!["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"];
        all.extend_from_slice(args);
        let args: Vec<String> = all.iter().map(|a| format!("{a:?}")).collect();
        format!(
            r#"{{"browserName":"chrome","goog:chromeOptions":{{"binary":{:?},"args":[{}]}}}}"#,
            chromium_binary(),
            args.join(",")
        )
    }
}

fn chromium_binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.to_owned())
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The free `geo-whois-asn-country` database (IP ranges → country codes, in MaxMind's format),
/// fetched from the npm registry as the README tells users to, at a fixed version so that the
/// answers tests expect stay true. Kept in `cache` between runs.
pub fn geo_database(cache: &Path) -> std::path::PathBuf {
    const PACKAGE: &str = "@ip-location-db/geo-whois-asn-country-mmdb@2.3.2026061719";
    let db = cache.join("package/geo-whois-asn-country.mmdb");
    if db.exists() {
        return db;
    }
    std::fs::create_dir_all(cache).expect("a cache directory");
    let run = |cmd: &mut Command| {
        let out = cmd.current_dir(cache).output().unwrap_or_else(|e| {
            panic!("cannot run {cmd:?} to fetch the GeoIP test database (npm is needed): {e}")
        });
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let tarball = run(Command::new("npm").args(["pack", "--silent", PACKAGE]));
    run(Command::new("tar").args(["xzf", &tarball]));
    assert!(db.exists(), "{PACKAGE} has no {}", db.display());
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_stops() {
        let mut redis = RedisServer::start();
        assert_eq!(redis.command(&["SET", "k", "v v"]), "OK");
        assert_eq!(redis.command(&["GET", "k"]), "v v");
        assert_eq!(redis.command(&["GET", "missing"]), "");
        assert_eq!(redis.command(&["INCRBY", "n", "5"]), "5");
        let port = redis.port();
        redis.kill();
        assert!(!ping(port), "killed");
        redis.restart(&["--save", ""]);
        assert!(ping(port));
        assert_eq!(redis.command(&["GET", "k"]), "", "nothing was kept on disk");
    }

    #[test]
    fn binary_commands_on_one_connection() {
        let redis = RedisServer::start();
        let mut conn = redis.connect();
        let value: &[u8] = b"\0\r\n\xff$3\r\n";
        assert_eq!(conn.command_bytes(&[b"SET", b"k\0", value]), b"OK");
        assert_eq!(conn.command_bytes(&[b"GET", b"k\0"]), value);
        assert_eq!(conn.command(&["STRLEN", "k\0"]), value.len().to_string());
        assert_eq!(redis.command_bytes(&[b"GET", b"k"]), b"", "nil");
        assert_eq!(conn.command(&["NOSUCHCOMMAND"]).split(' ').next(), Some("ERR"));
    }

    #[test]
    fn a_cluster_starts_with_every_slot_served() {
        let cluster = RedisCluster::start();
        for node in cluster.nodes() {
            let info = node.command(&["CLUSTER", "INFO"]);
            assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
            assert!(info.contains("cluster_size:3"), "{info}");
        }
    }

    #[test]
    fn two_servers_get_two_ports() {
        let (a, b) = (RedisServer::start(), RedisServer::start());
        assert_ne!(a.port(), b.port());
        a.command(&["SET", "k", "a"]);
        assert_eq!(b.command(&["GET", "k"]), "");
    }
}
