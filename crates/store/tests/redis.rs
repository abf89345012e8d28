//! The Redis backend, against a redis-server of each test's own: the shared conformance suite,
//! plus what only it has (the writer's lease, reconnecting as a restart does, command
//! connections beside the writer, a batch whose answer was lost).

use std::sync::Arc;
use std::time::Duration;

use footfall_core::batch::{Counter, CounterId, Slice, WriteBatch};
use footfall_core::event::{Event, decode_record};
use footfall_core::time::{Bucket, Grain};
use footfall_store::redis::WriterOptions;
use footfall_store::transfer::{Copied, Item, Transfer, migrate};
use footfall_store::{Counts, RedisStore, Store, StoreError};
use footfall_testkit::RedisServer;

/// No wait for a lease; the spill in the server's directory.
fn options(redis: &RedisServer) -> WriterOptions {
    WriterOptions {
        lease_wait: Duration::ZERO,
        spill_path: redis.dir().join("footfall-spill"),
        spill_max_bytes: 1 << 20,
    }
}

async fn fresh() -> (Arc<dyn Store>, RedisServer) {
    let redis = RedisServer::start();
    let store = RedisStore::connect_writer(&redis.url(), &options(&redis)).await.unwrap();
    (Arc::new(store), redis)
}

footfall_store::conformance_tests!(fresh);

fn event(ts: i64, page: &str, visitor: u64) -> Event {
    Event {
        site: "a.com".into(),
        ts,
        name: "pageview".into(),
        visitor,
        page: page.into(),
        ..Event::default()
    }
}

fn day() -> Bucket {
    Bucket { grain: Grain::Day, index: 20_779 }
}

fn pageviews(n: i64) -> Counts {
    Counts { pageviews: n, ..Counts::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_is_refused_while_the_first_holds_the_lease() {
    let redis = RedisServer::start();
    let first = RedisStore::connect_writer(&redis.url(), &options(&redis)).await.unwrap();
    let second = RedisStore::connect_writer(&redis.url(), &options(&redis)).await;
    let Err(err @ StoreError::Leased(_)) = second else {
        panic!("a second writer was let in");
    };
    assert!(err.to_string().contains("another footfall server"), "{err}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{}", redis.port())), "{err}");

    // Commands connect beside the writer, and see what it wrote.
    first.append(vec![event(1, "/", 1)]).await.unwrap();
    let command = RedisStore::connect(&redis.url()).await.unwrap();
    let err = command.append(vec![event(2, "/", 1)]).await.unwrap_err();
    assert!(err.to_string().contains("only `footfall serve` appends"), "{err}");
    assert_eq!(command.scan_log("a.com", 0, 10).await.unwrap(), [event(1, "/", 1)]);
    assert_eq!(command.unapplied(None, 10).await.unwrap(), [(0, event(1, "/", 1))]);

    // Closed, the writer gives the lease back at once.
    first.close().await.unwrap();
    let again = RedisStore::connect_writer(&redis.url(), &options(&redis)).await.unwrap();
    assert_eq!(again.append(vec![event(3, "/", 2)]).await.unwrap(), 1..2);
}

/// A new writer, as after a restart, continues the offsets and finds the unapplied events in
/// the streams, whichever partition they went to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_writer_continues_the_log_where_the_last_left_it() {
    let redis = RedisServer::start();
    let store = RedisStore::connect_writer(&redis.url(), &options(&redis)).await.unwrap();
    let events: Vec<Event> = (0..40).map(|i| event(i, &format!("/{i}"), i as u64 * 7)).collect();
    assert_eq!(store.append(events[..25].to_vec()).await.unwrap(), 0..25);
    assert_eq!(store.append(events[25..].to_vec()).await.unwrap(), 25..40);
    let mut batch = WriteBatch::at(Some(24), 25);
    batch.incr(
        CounterId {
            site: "a.com".into(),
            bucket: day(),
            slice: Slice::Total,
            counter: Counter::Pageviews,
        },
        25,
    );
    store.apply(&batch).await.unwrap();
    // One more group, so the writer trims the runs the apply covered.
    assert_eq!(store.append(vec![event(40, "/40", 3)]).await.unwrap(), 40..41);
    store.close().await.unwrap();

    let store = RedisStore::connect_writer(&redis.url(), &options(&redis)).await.unwrap();
    assert_eq!(store.applied_offset().await.unwrap(), Some(24));
    let unapplied = store.unapplied(Some(24), 1000).await.unwrap();
    let expected: Vec<(u64, Event)> = (25..41)
        .map(|i| (i, event(i as i64, &format!("/{i}"), if i == 40 { 3 } else { i * 7 })))
        .collect();
    assert_eq!(unapplied, expected);
    // Paged reads skip nothing.
    let mut read = Vec::new();
    let mut after = Some(24);
    loop {
        let page = store.unapplied(after, 7).await.unwrap();
        let Some(&(last, _)) = page.last() else { break };
        read.extend(page);
        after = Some(last);
    }
    assert_eq!(read, expected);
    assert_eq!(store.append(vec![event(41, "/41", 1)]).await.unwrap(), 41..42);
    assert_eq!(store.totals("a.com", &[day()]).await.unwrap(), [pageviews(25)]);
    // The first group's runs (one per partition) were trimmed once applied; the second
    // group's four, the third's and the last one's remain.
    let entries: usize = (0..4)
        .map(|p| redis.command(&["XLEN", &format!("ff:log:{{{p}}}")]).parse::<usize>().unwrap())
        .sum();
    assert_eq!(entries, 6);
}

/// A migration out of Redis holds the lease as a server does, so none starts meanwhile, and
/// first writes into Redis what the last server left in its spill: events it acknowledged
/// while Redis was down are part of what is copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_takes_the_lease_and_the_spill_in() {
    let mut redis = RedisServer::start();
    let writer = RedisStore::connect_writer(&redis.url(), &options(&redis)).await.unwrap();
    writer.append(vec![event(1, "/a", 1)]).await.unwrap();
    redis.kill();
    let spilled = vec![event(2, "/b", 2), event(3, "/c", 3)];
    assert_eq!(writer.append(spilled.clone()).await.unwrap(), 1..3);
    drop(writer);
    redis.restart(&["--save", "", "--appendonly", "no"]);

    let spill = options(&redis).spill_path;
    let exclusive =
        RedisStore::connect_exclusive(&redis.url(), Duration::ZERO, Some(&spill)).await.unwrap();
    let err = RedisStore::connect_writer(&redis.url(), &options(&redis)).await.err();
    assert!(matches!(err, Some(StoreError::Leased(_))), "a server started during a migration");
    let err = exclusive.append(vec![event(4, "/d", 4)]).await.unwrap_err();
    assert!(err.to_string().contains("only `footfall serve` appends"), "{err}");

    let mut unapplied = Vec::new();
    let mut chunks = exclusive.export();
    while let Some(chunk) = chunks.recv().await {
        for item in chunk.unwrap() {
            if let Item::Unapplied { offset, record } = item {
                unapplied.push((offset, decode_record(&record).unwrap()));
            }
        }
    }
    // The first event went with the Redis that was killed (it kept nothing on disk).
    assert_eq!(unapplied, [(1, spilled[0].clone()), (2, spilled[1].clone())]);
    exclusive.close().await.unwrap();
    RedisStore::connect_writer(&redis.url(), &options(&redis)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_migrates_as_nothing_either_way() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let on_redis = RedisStore::connect_exclusive(&redis.url(), Duration::ZERO, None).await.unwrap();
    let embedded = footfall_store::EmbeddedStore::open(dir.path()).unwrap();
    let none = Copied::default();
    assert_eq!(migrate(&on_redis, &embedded, &mut |_| {}).await.unwrap(), none);
    assert_eq!(migrate(&embedded, &on_redis, &mut |_| {}).await.unwrap(), none);
    assert_eq!(on_redis.contents().await.unwrap(), None);
    assert_eq!(embedded.contents().await.unwrap(), None);
}

/// Where a proxy between the store and Redis cuts the connection of a pipeline holding `EXEC`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// After Redis has run it, before its answer reaches the store.
    AfterExec,
    /// Before Redis sees it: Redis drops the transaction with the connection.
    BeforeExec,
}

/// A TCP proxy to `redis` that cuts the first connection that sends `EXEC` once armed.
struct Proxy {
    port: u16,
    armed: Arc<std::sync::Mutex<Option<Cut>>>,
}

impl Proxy {
    async fn start(redis: &RedisServer) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(std::sync::Mutex::new(None));
        let (upstream, trigger) = (redis.port(), Arc::clone(&armed));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                tokio::spawn(pump(client, server, Arc::clone(&trigger)));
            }
        });
        Proxy { port, armed }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn arm(&self, cut: Cut) {
        *self.armed.lock().unwrap() = Some(cut);
    }
}

async fn pump(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    armed: Arc<std::sync::Mutex<Option<Cut>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = {
        let cut = Arc::clone(&cut);
        tokio::spawn(async move {
            let mut buf = vec![0; 1 << 16];
            while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
                if cut.load(std::sync::atomic::Ordering::SeqCst)
                    || client_tx.write_all(&buf[..n]).await.is_err()
                {
                    return;
                }
            }
        })
    };
    let mut buf = vec![0; 1 << 16];
    while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
        let chunk = &buf[..n];
        let has_exec = chunk.windows(4).any(|w| w == b"EXEC");
        let fire = if has_exec { armed.lock().unwrap().take() } else { None };
        if let Some(how) = fire {
            cut.store(true, std::sync::atomic::Ordering::SeqCst);
            if how == Cut::AfterExec {
                server_tx.write_all(chunk).await.unwrap();
                // Long enough for Redis to run the transaction.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            break;
        }
        if server_tx.write_all(chunk).await.is_err() {
            break;
        }
    }
    answers.abort();
}

/// A write batch whose `EXEC` answer is lost is neither applied twice (when Redis ran it) nor
/// lost (when it did not): the retry first asks Redis which it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_answer_was_lost_is_applied_exactly_once() {
    for cut in [Cut::AfterExec, Cut::BeforeExec] {
        let redis = RedisServer::start();
        let proxy = Proxy::start(&redis).await;
        let store = RedisStore::connect_writer(&proxy.url(), &options(&redis)).await.unwrap();
        let events = vec![event(1, "/", 1), event(2, "/", 2), event(3, "/", 3)];
        assert_eq!(store.append(events).await.unwrap(), 0..3);
        let mut batch = WriteBatch::at(Some(2), 3);
        let id = CounterId {
            site: "a.com".into(),
            bucket: day(),
            slice: Slice::Total,
            counter: Counter::Pageviews,
        };
        batch.incr(id, 3);

        proxy.arm(cut);
        let err = store.apply(&batch).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        let landed = redis.command(&["HGET", "ff:{a.com}:t:d:2026-11-22", "pageviews"]);
        assert_eq!(landed, if cut == Cut::AfterExec { "3" } else { "" });

        // The pipeline retries the same batch until it succeeds.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Err(e) = store.apply(&batch).await {
            assert!(std::time::Instant::now() < deadline, "the retry never succeeded: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(store.totals("a.com", &[day()]).await.unwrap(), [pageviews(3)]);
        assert_eq!(store.applied_offset().await.unwrap(), Some(2));
        assert_eq!(store.unapplied(None, 10).await.unwrap(), []);
    }
}
