//! Exactly once through `kill -9`: the real binary is killed under load, several times, and
//! restarted; every event it acknowledged with 202 must then be counted exactly once, and
//! nothing may be counted that was not sent.
//!
//! Every event carries a unique id in a property, so the check is per event (the `prop:n`
//! breakdown), not a total that a double count could hide in.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use footfall_core::batch::Dim;
use footfall_core::time::{Bucket, Grain, SiteClock};
use footfall_store::{EmbeddedStore, Store};

const SITE: &str = "crash.example";
const CLIENTS: u64 = 4;
const BATCH: u64 = 20;

fn footfall(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_footfall"));
    c.arg("--data-dir").arg(data).env("FOOTFALL_LOG", "warn");
    c
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(data: &Path) -> (Server, u16) {
    let port = free_port();
    let child = footfall(data)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if matches!(http(port, "GET", "/healthz", ""), Some((200, _))) {
            return (server, port);
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("the server did not come up");
}

/// One HTTP/1.1 request on a fresh connection; `None` when the connection fails, as it does
/// when the server is killed mid-request.
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// Ids sent and acknowledged, and ids sent whose answer never came.
#[derive(Default)]
struct Ledger {
    acked: HashSet<u64>,
    unanswered: HashSet<u64>,
}

/// Sends batches with fresh ids from `CLIENTS` threads until the server stops answering.
fn load(port: u16, first_id: u64, ledger: &Arc<Mutex<Ledger>>) -> Vec<thread::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|c| {
            let ledger = ledger.clone();
            thread::spawn(move || {
                let mut next = first_id + c * 10_000_000;
                loop {
                    let ids: Vec<u64> = (next..next + BATCH).collect();
                    next += BATCH;
                    let body = ids
                        .iter()
                        .map(|n| {
                            format!(
                                r#"{{"site":"{SITE}","name":"pageview","url":"https://{SITE}/p{}","props":{{"n":"{n}"}}}}"#,
                                n % 50
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(",");
                    let answer = http(port, "POST", "/api/track", &format!("[{body}]"));
                    let mut l = ledger.lock().unwrap();
                    match answer {
                        Some((202, b)) => {
                            assert!(b.contains(&format!(r#""accepted":{BATCH}"#)), "{b}");
                            l.acked.extend(ids);
                        }
                        Some((status, b)) => panic!("unexpected answer {status}: {b}"),
                        None => {
                            l.unanswered.extend(ids);
                            return;
                        }
                    }
                }
            })
        })
        .collect()
}

/// Events counted per id in the `prop:n` breakdown of today (and yesterday, should the test
/// run across midnight).
async fn counted(data: &Path) -> HashMap<u64, i64> {
    let store = EmbeddedStore::open(data).unwrap();
    assert!(store.unapplied(None, 1).await.unwrap().is_empty(), "events left unapplied");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let today = SiteClock::utc().bucket(now.as_millis() as i64, Grain::Day);
    let days = [Bucket { index: today.index - 1, ..today }, today];
    let rows = store.breakdown(SITE, &days, &Dim::Prop("n".into())).await.unwrap();
    rows.into_iter().map(|(v, c)| (v.parse().unwrap(), c.events)).collect()
}

#[test]
fn acknowledged_events_are_counted_exactly_once_through_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let status = footfall(&data).args(["site", "add", SITE]).status().unwrap();
    assert!(status.success());

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for round in 0..3u64 {
        let (mut server, port) = start(&data);
        let clients = load(port, round * 100_000_000, &ledger);
        // Kill at a different moment of each round's load.
        thread::sleep(Duration::from_millis(700 + 400 * round));
        server.0.kill().unwrap(); // SIGKILL
        server.0.wait().unwrap();
        for c in clients {
            c.join().unwrap();
        }
    }

    // Restart once more: the recovery runs, and a clean stop applies whatever is left.
    let (server, _) = start(&data);
    let mut server = server;
    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(server.0.wait().unwrap().success(), "a clean stop exits 0");

    let counted = tokio::runtime::Runtime::new().unwrap().block_on(counted(&data));
    let l = ledger.lock().unwrap();
    assert!(l.acked.len() > 500, "the load was too light to prove much: {}", l.acked.len());
    for id in &l.acked {
        assert_eq!(counted.get(id), Some(&1), "acknowledged event {id} must be counted once");
    }
    for (id, n) in &counted {
        assert!(l.acked.contains(id) || l.unanswered.contains(id), "{id} was never sent");
        assert_eq!(*n, 1, "event {id} counted {n} times");
    }
    eprintln!(
        "acknowledged {}, unanswered {} (of which counted {}), counted {}",
        l.acked.len(),
        l.unanswered.len(),
        l.unanswered.iter().filter(|id| counted.contains_key(id)).count(),
        counted.len()
    );
}
