//! Replays the commands of `fixtures/hll.txt` (captured from a real Redis by
//! `scripts/capture-hll-fixtures.sh`, which documents the format) with `Hll`, and checks that
//! every byte string and count equals what Redis produced.

use std::collections::HashMap;

use footfall_core::hll::{Hll, count_union};

const FIXTURE: &str = include_str!("fixtures/hll.txt");

#[test]
fn replays_redis_fixtures_byte_for_byte() {
    let mut keys: HashMap<String, Hll> = HashMap::new();
    let mut checks = 0;
    for (n, line) in FIXTURE.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("fixture line {}: {line:.120}", n + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[0] {
            "pfadd" => {
                let hll = keys.entry(f[1].to_owned()).or_default();
                let (changed, dense_at, trace) = pfadd(hll, f[2]);
                assert_eq!(changed, f[3].parse::<u64>().unwrap(), "PFADD replies, {at}");
                assert_eq!(dense_at, f[4].parse::<i64>().unwrap(), "promotion point, {at}");
                assert_eq!(trace, f[5], "sparse states along the way, {at}");
            }
            "get" => {
                let bytes = keys[f[1]].to_bytes();
                assert_eq!(bytes.len(), f[2].parse::<usize>().unwrap(), "length, {at}");
                match f[3].strip_prefix("sha1:") {
                    Some(sha) => assert_eq!(hex(&sha1(&bytes)), sha, "SHA-1 of bytes, {at}"),
                    None => assert_eq!(hex(&bytes), f[3], "bytes, {at}"),
                }
                // What Redis wrote must read back as the same value.
                let back = Hll::from_bytes(&bytes).unwrap();
                assert_eq!(back, keys[f[1]], "round trip, {at}");
            }
            "pfcount" => {
                let expected: u64 = f[1].parse().unwrap();
                let names = &f[2..];
                let hlls: Vec<Hll> = names.iter().map(|k| keys[*k].clone()).collect();
                assert_eq!(count_union(&hlls), expected, "PFCOUNT, {at}");
                if let [name] = names {
                    let hll = keys.get_mut(*name).unwrap();
                    assert_eq!(hll.count(), expected, "single-key count, {at}");
                    // Redis stores the count it just computed as the (now valid) cached
                    // cardinality; do the same to the bytes so later GETs still compare equal.
                    let mut bytes = hll.to_bytes();
                    bytes[8..16].copy_from_slice(&expected.to_le_bytes());
                    *hll = Hll::from_bytes(&bytes).unwrap();
                }
            }
            "pfmerge" => {
                let src = keys[f[2]].clone();
                keys.entry(f[1].to_owned()).or_default().merge(&src);
            }
            "todense" => {
                let hll = keys.get_mut(f[1]).unwrap();
                *hll = Hll::from_bytes(&to_dense(&hll.to_bytes())).unwrap();
            }
            other => panic!("unknown fixture command {other:?}, {at}"),
        }
        checks += 1;
    }
    assert!(checks > 100, "fixture looks truncated: {checks} commands");
}

/// PFADDs each element of `spec` (format in the capture script); returns how many changed a
/// register, the index of the element after which the HLL was first dense (-1 if never) and the
/// SHA-1 chain over the sparse states after each element ("-" if none).
fn pfadd(hll: &mut Hll, spec: &str) -> (u64, i64, String) {
    let mut changed = 0;
    let mut dense_at = -1;
    let mut n = 0;
    let mut trace = String::new();
    let mut add = |hll: &mut Hll, element: &[u8]| {
        changed += u64::from(hll.add(element));
        if dense_at < 0 {
            let bytes = hll.to_bytes();
            if bytes[4] == 0 {
                dense_at = n;
            } else {
                trace = hex(&sha1(&[trace.as_bytes(), &bytes].concat()));
            }
        }
        n += 1;
    };
    for seg in spec.split(',') {
        let (kind, rest) = seg.split_once(':').unwrap_or((seg, ""));
        match kind {
            // The key exists already (`or_default` above), as Redis's PFADD creates it.
            "empty" => {}
            "u64" => {
                let (a, b) = rest.split_once(':').unwrap();
                for i in a.parse::<u64>().unwrap()..b.parse().unwrap() {
                    add(hll, &i.to_le_bytes());
                }
            }
            "str" => {
                let (prefix, range) = rest.split_once(':').unwrap();
                let (a, b) = range.split_once(':').unwrap();
                for i in a.parse::<u64>().unwrap()..b.parse().unwrap() {
                    add(hll, format!("{prefix}{i}").as_bytes());
                }
            }
            "hex" => add(hll, &unhex(rest)),
            other => panic!("unknown segment kind {other:?}"),
        }
    }
    if trace.is_empty() {
        trace.push('-');
    }
    (changed, dense_at, trace)
}

/// What Redis's `PFDEBUG TODENSE` does to the bytes of a sparse HLL (the library has no such
/// operation): keep the header, switch the encoding, pack the registers.
fn to_dense(bytes: &[u8]) -> Vec<u8> {
    if bytes[4] == 0 {
        return bytes.to_vec();
    }
    let mut regs = Vec::with_capacity(16384);
    let mut p = 16;
    while p < bytes.len() {
        let op = bytes[p];
        if op & 0x80 != 0 {
            let value = ((op >> 2) & 0x1f) + 1;
            regs.extend(std::iter::repeat_n(value, usize::from(op & 3) + 1));
            p += 1;
        } else if op & 0x40 != 0 {
            let len = (usize::from(op & 0x3f) << 8 | usize::from(bytes[p + 1])) + 1;
            regs.extend(std::iter::repeat_n(0, len));
            p += 2;
        } else {
            regs.extend(std::iter::repeat_n(0, usize::from(op & 0x3f) + 1));
            p += 1;
        }
    }
    assert_eq!(regs.len(), 16384);
    let mut out = bytes[..16].to_vec();
    out[4] = 0;
    for r in regs.chunks_exact(4) {
        out.push(r[0] | r[1] << 6);
        out.push(r[1] >> 2 | r[2] << 4);
        out.push(r[2] >> 4 | r[3] << 2);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// SHA-1, only to compare against Redis's `redis.sha1hex` of big values (keeps the fixture small
/// without adding a dependency).
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().unwrap());
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..20 => ((b & c) | (!b & d), 0x5A827999),
                20..40 => (b ^ c ^ d, 0x6ED9EBA1),
                40..60 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t =
                a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, x) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[test]
fn sha1_matches_known_vectors() {
    assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
    let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_eq!(hex(&sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

/// Standard error of Redis's HLL is 1.04/sqrt(16384) ≈ 0.81%; over 1..=1,000,000 distinct
/// visitor ids the estimate must stay close to the exact count (checked at ~130 points spaced
/// 10% apart; the data is fixed, so this is deterministic).
#[test]
fn relative_error_stays_small_up_to_a_million() {
    let mut hll = Hll::new();
    let (mut sum_sq, mut large) = (0.0, 0);
    let mut next = 1u64;
    for i in 1..=1_000_000u64 {
        hll.add(&i.to_le_bytes());
        if i != next && i != 1_000_000 {
            continue;
        }
        next = (next as f64 * 1.1).ceil() as u64;
        let count = hll.count();
        let err = (count as f64 - i as f64) / i as f64;
        let msg = format!("{i} distinct: count {count} ({:+.2}%)", err * 100.0);
        if i < 1000 {
            // Few elements: off by at most one (a register collision) or a few percent.
            assert!(count.abs_diff(i) <= 1 || err.abs() < 0.03, "{msg}");
        } else {
            // About 3 standard errors.
            assert!(err.abs() < 0.025, "{msg}");
            sum_sq += err * err;
            large += 1;
        }
    }
    let rms = (sum_sq / f64::from(large)).sqrt();
    assert!(rms < 0.012, "RMS relative error {:.3}% from 1000 on", rms * 100.0);
}
