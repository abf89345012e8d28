//! The real `footfall` binary in a temporary directory: commands on a data directory with no
//! server, the same commands through a running server's control socket, and an orderly stop.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::thread::sleep;
use std::time::{Duration, Instant};

use footfall_testkit::RedisServer;
use support::{Redis, Server, Workspace, fails, footfall, ok};

impl Workspace {
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
