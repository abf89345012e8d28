//! Checks `Hll` against the installed redis-server, live, both ways and across the sparse→dense
//! promotion: bytes footfall writes (by `add` one by one and by `add_all` batches) count and
//! merge in Redis (`PFCOUNT`, `PFMERGE`) exactly as footfall counts them, and bytes Redis writes
//! (`PFADD`, `PFMERGE`) read in footfall to the same counts, and to the same bytes wherever
//! footfall promises Redis's bytes (sequential `add`, `merge`). `hll_redis.rs` replays bytes
//! captured once; this catches a Redis whose HyperLogLog differs from the one captured.

use footfall_core::batch::unique_element;
use footfall_core::hll::{Hll, count_union};
use footfall_testkit::{Connection, RedisServer};

/// Distinct elements per key: empty, sparse (Redis promotes at 3000 bytes, some 1700 elements),
/// just past the promotion, and well into dense, where most registers are set.
const SIZES: [usize; 8] = [0, 1, 10, 100, 1000, 3000, 20_000, 200_000];
/// Keys per size, with overlapping elements, so that a union is neither a sum nor one key.
const KEYS: usize = 3;
/// Lengths of successive `PFADD`s and `add_all` batches, cycled: up to 2 elements `add_all` adds
/// one by one, more it merges into the sparse opcodes in one pass or promotes mid-batch.
const BATCHES: [usize; 5] = [1, 2, 40, 300, 1000];

/// Element `i`: mostly the 8-byte visitor ids footfall counts, some strings, some bytes that
/// RESP's framing must carry through, and the empty string.
fn element(i: usize) -> Vec<u8> {
    match i % 10 {
        _ if i == 0 => Vec::new(),
        0 => format!("/page/{i}?q=ü").into_bytes(),
        5 => [b"\0\r\n$*".as_slice(), &i.to_be_bytes()].concat(),
        _ => unique_element(i as u64).to_vec(),
    }
}

/// The elements of key `key` of size `n`: half of them shared with the key before it.
fn elements(n: usize, key: usize) -> Vec<Vec<u8>> {
    let first = key * n / 2;
    (first..first + n).map(element).collect()
}

/// `elements` cut into batches of the lengths of `BATCHES`; at least one, empty for no elements
/// (a `PFADD` with no elements still creates the key).
fn batches(elements: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut out = Vec::new();
    let mut rest = elements;
    for &len in BATCHES.iter().cycle() {
        let (batch, tail) = rest.split_at(len.min(rest.len()));
        out.push(batch);
        rest = tail;
        if rest.is_empty() {
            break;
        }
    }
    out
}

/// Adds `batch` to `one_by_one` by `add` (Redis's bytes after the same `PFADD`s) and to
/// `batched` by `add_all` (Redis's registers); returns whether it changed a register.
fn add_both_ways(one_by_one: &mut Hll, batched: &mut Hll, batch: &[Vec<u8>]) -> bool {
    let changed = batch.iter().fold(false, |c, e| one_by_one.add(e) | c);
    assert_eq!(batched.add_all(batch), changed, "add_all and add disagree on a change");
    changed
}

/// The keys of size `n` as footfall builds them by `add` and by `add_all`, and their registers
/// in dense encoding even when few (as after Redis's `PFDEBUG TODENSE`), named by way.
fn footfall_keys(n: usize) -> [(&'static str, Vec<Hll>); 3] {
    let (mut one_by_one, mut batched) = (Vec::new(), Vec::new());
    for k in 0..KEYS {
        let (mut a, mut b) = (Hll::new(), Hll::new());
        for batch in batches(&elements(n, k)) {
            add_both_ways(&mut a, &mut b, batch);
        }
        one_by_one.push(a);
        batched.push(b);
    }
    let dense = one_by_one.iter().map(dense).collect();
    [("add", one_by_one), ("add_all", batched), ("dense", dense)]
}

/// `SET`s footfall's keys of size `n` built one `way` into Redis; returns their names.
fn set_all(conn: &mut Connection, way: &str, n: usize, hlls: &[Hll]) -> Vec<String> {
    let names: Vec<String> = (0..KEYS).map(|k| format!("{way}:{n}:{k}")).collect();
    for (name, hll) in names.iter().zip(hlls) {
        set(conn, name, hll);
    }
    names
}

#[test]
fn footfall_keys_count_the_same_in_redis() {
    let redis = RedisServer::start();
    let mut conn = redis.connect();
    for n in SIZES {
        for (way, hlls) in footfall_keys(n) {
            let names = set_all(&mut conn, way, n, &hlls);
            for (name, hll) in names.iter().zip(&hlls) {
                assert_eq!(pfcount(&mut conn, &[name]), hll.count(), "PFCOUNT {name}");
            }
            assert_eq!(pfcount(&mut conn, &names), count_union(&hlls), "PFCOUNT {names:?}");
        }
    }
}

#[test]
fn redis_keys_read_the_same_in_footfall() {
    let redis = RedisServer::start();
    let mut conn = redis.connect();
    for n in SIZES {
        let mut names = Vec::new();
        let mut read = Vec::new();
        for k in 0..KEYS {
            let name = format!("redis:{n}:{k}");
            let (mut one_by_one, mut batched) = (Hll::new(), Hll::new());
            let mut bytes = Vec::new();
            for (i, batch) in batches(&elements(n, k)).into_iter().enumerate() {
                let mut words: Vec<&[u8]> = vec![b"PFADD", name.as_bytes()];
                words.extend(batch.iter().map(Vec::as_slice));
                let changed = add_both_ways(&mut one_by_one, &mut batched, batch);
                // Redis also replies 1 to the PFADD that creates the key.
                let expected = u64::from(changed || i == 0);
                assert_eq!(int(conn.command_bytes(&words)), expected, "PFADD {name}, batch {i}");
                // After every batch, to see Redis promote to dense where footfall does.
                bytes = conn.command_bytes(&[b"GET", name.as_bytes()]);
                let what = format!("GET {name} after batch {i}");
                assert_same_bytes(&bytes, &one_by_one.to_bytes(), &what);
            }
            // Counted only now: PFCOUNT writes the count it computes into the bytes.
            let hll = Hll::from_bytes(&bytes).expect("Redis's bytes parse");
            let count = pfcount(&mut conn, &[&name]);
            assert_eq!(hll.count(), count, "count of {name} as read");
            assert_eq!(batched.count(), count, "count of {name} by add_all");
            assert!(
                dense(&batched) == dense(&hll),
                "add_all's registers differ from Redis's for {name}"
            );
            names.push(name);
            read.push(hll);
        }
        assert_eq!(count_union(&read), pfcount(&mut conn, &names), "PFCOUNT {names:?}");
    }
}

#[test]
fn pfmerge_of_footfall_keys_matches_footfall() {
    let redis = RedisServer::start();
    let mut conn = redis.connect();
    for n in SIZES {
        for (way, hlls) in footfall_keys(n) {
            let names = set_all(&mut conn, way, n, &hlls);
            let union = count_union(&hlls);

            let all = format!("union:{way}:{n}");
            let mut words = vec!["PFMERGE", &all];
            words.extend(names.iter().map(String::as_str));
            assert_eq!(conn.command(&words), "OK");
            let bytes = conn.command_bytes(&[b"GET", all.as_bytes()]);
            assert_eq!(Hll::from_bytes(&bytes).expect("parses").count(), union, "{all} as read");
            assert_eq!(pfcount(&mut conn, &[&all]), union, "PFCOUNT {all}");

            // One source per PFMERGE: `merge` promises Redis's bytes for that.
            let each = format!("merged:{way}:{n}");
            let mut merged = Hll::new();
            for (name, hll) in names.iter().zip(&hlls) {
                assert_eq!(conn.command(&["PFMERGE", &each, name]), "OK");
                merged.merge(hll);
                let bytes = conn.command_bytes(&[b"GET", each.as_bytes()]);
                assert_same_bytes(&bytes, &merged.to_bytes(), &format!("PFMERGE {each} {name}"));
            }
        }
    }
}

/// `add_all` writes each run of equal registers in the longest opcodes, Redis's `PFADD`s in
/// opcodes that depend on the order of additions. They differ where more than 4 adjacent
/// registers share a value, which sparse HLLs of realistic elements almost never hold: above,
/// `add_all` wrote Redis's very bytes at every size. Here five elements fill five adjacent
/// registers with 1 in an order after which Redis covers them as 3 + 2 and `add_all` as 4 + 1:
/// Redis must count those, and `PFADD` into them as footfall's `add` does.
#[test]
fn redis_reads_and_extends_add_alls_own_opcodes() {
    let run = adjacent_ones();
    let order = [&run[0], &run[1], &run[3], &run[4], &run[2]];
    let mut batched = Hll::new();
    batched.add_all(&order);
    let mut one_by_one = Hll::new();
    order.iter().for_each(|e| _ = one_by_one.add(e));
    assert_ne!(batched, one_by_one, "the case no longer gives add_all opcodes of its own");

    let redis = RedisServer::start();
    let mut conn = redis.connect();
    set(&mut conn, "k", &batched);
    assert_eq!(pfcount(&mut conn, &["k"]), batched.count(), "PFCOUNT as written");
    // That PFCOUNT cached the count in the header, valid, which the next change must mark stale.
    let mut cached = batched.to_bytes();
    cached[8..16].copy_from_slice(&batched.count().to_le_bytes());
    let bytes = conn.command_bytes(&[b"GET", b"k"]);
    assert_same_bytes(&bytes, &cached, "GET after PFCOUNT");
    let mut batched = Hll::from_bytes(&bytes).expect("Redis's bytes parse");
    for (i, batch) in batches(&elements(3000, 0)).into_iter().enumerate() {
        let mut words: Vec<&[u8]> = vec![b"PFADD", b"k"];
        words.extend(batch.iter().map(Vec::as_slice));
        let changed = batch.iter().fold(false, |c, e| batched.add(e) | c);
        assert_eq!(int(conn.command_bytes(&words)), u64::from(changed), "PFADD batch {i}");
        let bytes = conn.command_bytes(&[b"GET", b"k"]);
        assert_same_bytes(&bytes, &batched.to_bytes(), &format!("GET after PFADD batch {i}"));
    }
    assert_eq!(pfcount(&mut conn, &["k"]), batched.count(), "PFCOUNT k");
}

/// Five elements that raise five adjacent registers to 1, found among visitor ids.
fn adjacent_ones() -> Vec<Vec<u8>> {
    let mut ones: Vec<Option<Vec<u8>>> = vec![None; 16384];
    for visitor in 0.. {
        let e = unique_element(visitor).to_vec();
        let (index, value) = register_of(&e);
        if value != 1 || ones[index].is_some() {
            continue;
        }
        ones[index] = Some(e);
        for first in index.saturating_sub(4)..=index.min(16384 - 5) {
            if let Some(run) = ones[first..first + 5].iter().cloned().collect() {
                return run;
            }
        }
    }
    unreachable!("visitor ids run out")
}

/// The register `element` raises and its value, read off a one-element HLL's sparse opcodes.
fn register_of(element: &[u8]) -> (usize, u8) {
    let mut hll = Hll::new();
    hll.add(element);
    let bytes = hll.to_bytes();
    let (mut index, mut p) = (0, 16);
    loop {
        let op = bytes[p];
        if op & 0x80 != 0 {
            return (index, (op >> 2 & 0x1f) + 1); // VAL
        } else if op & 0x40 != 0 {
            index += (usize::from(op & 0x3f) << 8 | usize::from(bytes[p + 1])) + 1; // XZERO
            p += 2;
        } else {
            index += usize::from(op) + 1; // ZERO
            p += 1;
        }
    }
}

fn set(conn: &mut Connection, name: &str, hll: &Hll) {
    assert_eq!(conn.command_bytes(&[b"SET", name.as_bytes(), &hll.to_bytes()]), b"OK");
}

fn pfcount(conn: &mut Connection, names: &[impl AsRef<str>]) -> u64 {
    let mut words = vec!["PFCOUNT"];
    words.extend(names.iter().map(AsRef::as_ref));
    int(conn.command(&words).into_bytes())
}

/// An integer reply, or a panic showing the reply (such as Redis's error for a corrupt HLL).
fn int(reply: Vec<u8>) -> u64 {
    let text = String::from_utf8_lossy(&reply);
    text.parse().unwrap_or_else(|_| panic!("Redis replied {text:?}, not an integer"))
}

/// `hll`'s registers in dense encoding (merging into a dense HLL keeps it dense), so HLLs with
/// equal registers give equal results whatever their encodings.
fn dense(hll: &Hll) -> Hll {
    let mut bytes = vec![0; 16 + 16384 * 6 / 8];
    bytes[..4].copy_from_slice(b"HYLL");
    let mut dense = Hll::from_bytes(&bytes).expect("an empty dense HLL");
    dense.merge(hll);
    dense
}

/// Asserts byte equality, reporting where the bytes part rather than dumping up to 12 KiB.
fn assert_same_bytes(redis: &[u8], footfall: &[u8], what: &str) {
    if redis == footfall {
        return;
    }
    let at = redis.iter().zip(footfall).take_while(|(a, b)| a == b).count();
    let around = |b: &[u8]| format!("{:02x?}", &b[at.saturating_sub(4)..b.len().min(at + 8)]);
    panic!(
        "{what}: Redis's bytes differ from footfall's: lengths {} and {} (encoding {} and {}), \
         first difference at byte {at}: Redis {} footfall {}",
        redis.len(),
        footfall.len(),
        redis.get(4).copied().unwrap_or(255),
        footfall.get(4).copied().unwrap_or(255),
        around(redis),
        around(footfall),
    );
}
