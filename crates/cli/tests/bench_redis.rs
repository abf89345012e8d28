//! `footfall bench --redis` against a real redis-server: events/s, Redis commands per event
//! from `INFO commandstats`, and the naive one-command-per-round-trip design beside it.

use std::process::{Command, Stdio};

use footfall_testkit::RedisServer;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_footfall");

#[test]
fn bench_on_redis_counts_commands_per_event_beside_the_naive_design() {
    let redis = RedisServer::start();
    let url = redis.url();
    let args = [
        "bench",
        "--redis",
        &url,
        "--seconds",
        "2",
        "--batch",
        "50",
        "--max-requests",
        "300",
        "--concurrency",
        "8",
        "--visitors",
        "200",
        "--json",
    ];
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FOOTFALL_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    let out = cmd.env("FOOTFALL_LOG", "warn").output().expect("the footfall binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "footfall {args:?} failed: {}\n{stderr}", out.status);
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let run = &report["scenarios"][0];

    // footfall: accepted events, and a fraction of a Redis command for each.
    assert_eq!(run["batch"], 50);
    assert_eq!(run["errors"], 0, "{run}");
    let events = run["events"].as_u64().unwrap();
    assert_eq!(events, 50 * run["requests"].as_u64().unwrap(), "{run}");
    assert!(run["events_per_second"].as_f64().unwrap() > 0.0, "{run}");
    let cost = &run["redis"];
    let per_event = cost["commands_per_event"].as_f64().unwrap();
    assert!(per_event > 0.0 && per_event < 1.0, "footfall at batch 50: {cost}");
    let commands = cost["commands"].as_u64().unwrap();
    assert_eq!(commands, calls(cost).iter().map(|(_, n)| n).sum::<u64>());
    assert!((per_event - commands as f64 / events as f64).abs() < 1e-9);
    // The applies ran before the count was read: their transactions are in it.
    assert!(calls(cost).iter().any(|(c, _)| c == "hincrby"), "{cost}");
    assert!(run["pipeline_drain_seconds"].as_f64().is_some(), "{run}");

    // The naive design: exactly five commands per event, as Redis counted them.
    let naive = &run["naive"];
    assert_eq!(naive["errors"], 0, "{naive}");
    let naive_events = naive["events"].as_u64().unwrap();
    assert!(naive_events > 0 && naive["events_per_second"].as_f64().unwrap() > 0.0, "{naive}");
    assert_eq!(naive["redis"]["commands_per_event"].as_f64(), Some(5.0), "{naive}");
    let mut naive_calls = calls(&naive["redis"]);
    naive_calls.sort();
    let expected: Vec<(String, u64)> = [
        ("expire", naive_events),
        ("hset", naive_events),
        ("sadd", naive_events),
        ("xadd", 2 * naive_events),
    ]
    .into_iter()
    .map(|(c, n)| (c.to_owned(), n))
    .collect();
    assert_eq!(naive_calls, expected);
    assert!(run["footfall_vs_naive"].as_f64().unwrap() > 0.0, "{run}");

    // What the run wrote under its own names is gone.
    let site = report["redis"]["site"].as_str().unwrap();
    assert!(site.ends_with(".bench.example"), "{site}");
    let prefix = report["redis"]["naive_prefix"].as_str().unwrap();
    assert_eq!(redis.command(&["KEYS", &format!("{prefix}*")]), "");
    assert_eq!(redis.command(&["KEYS", &format!("ff:{{{site}}}:*")]), "");
    assert_eq!(redis.command(&["HEXISTS", "ff:sites", site]), "0");
}

/// A cost's `commandstats` as (command, calls).
fn calls(cost: &Value) -> Vec<(String, u64)> {
    cost["commandstats"]
        .as_array()
        .expect("commandstats")
        .iter()
        .map(|c| (c["command"].as_str().unwrap().to_owned(), c["calls"].as_u64().unwrap()))
        .collect()
}
