//! A HyperLogLog that is byte-for-byte the one Redis keeps (`PFADD`, `PFCOUNT`, `PFMERGE`).
//!
//! The reference is Redis 7's `hyperloglog.c`; everything here follows it exactly, so that the
//! embedded store and the Redis store report the same unique counts to the last digit, and bytes
//! written by either one can be read by the other (`GET`/`SET` of the key).
//!
//! Format (a Redis string):
//!
//! - a 16-byte header: `"HYLL"`, the encoding (0 dense, 1 sparse), 3 unused bytes and a cached
//!   cardinality as a little-endian `u64` whose most significant bit (byte 15, `0x80`) marks the
//!   cache as stale;
//! - dense: 16384 registers of 6 bits packed from the least significant bit of each byte onwards
//!   (12288 bytes);
//! - sparse: run-length opcodes, `ZERO` (`00xxxxxx`, 1..=64 zero registers), `XZERO`
//!   (`01xxxxxx yyyyyyyy`, 1..=16384 zero registers) and `VAL` (`1vvvvvxx`, 1..=4 registers of
//!   value 1..=32), which must cover exactly 16384 registers.
//!
//! Elements are hashed with MurmurHash64A (seed `0xadc83b19`); the low 14 bits pick the register
//! and the register keeps the longest "zeros then a one" pattern seen in the remaining 50 bits.
//! The count uses Otmar Ertl's improved estimator over the register histogram, as Redis does.

use std::fmt;

/// Index bits: 2^14 = 16384 registers.
const P: u32 = 14;
/// Number of registers.
const REGISTERS: usize = 1 << P;
/// Hash bits left after the index; a register value is at most `Q + 1`.
const Q: u32 = 64 - P;
/// Largest value a 6-bit dense register holds.
const REGISTER_MAX: u8 = 63;
/// Header size: magic, encoding, 3 unused bytes, cached cardinality.
const HDR: usize = 16;
/// Bytes of packed 6-bit dense registers.
const DENSE_REGS: usize = REGISTERS * 6 / 8;
/// Total length of a dense HLL.
const DENSE_SIZE: usize = HDR + DENSE_REGS;
const MAGIC: &[u8; 4] = b"HYLL";
const ENC_DENSE: u8 = 0;
const ENC_SPARSE: u8 = 1;
/// Redis's `hll-sparse-max-bytes` default: a sparse HLL (header included) that would grow past
/// this is promoted to dense.
const SPARSE_MAX_BYTES: usize = 3000;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
/// Redis's `HLL_ALPHA_INF`, 0.5 / ln 2.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
const SEED: u64 = 0xadc8_3b19;
/// From this many additions at once, a pass over every register costs less than sorting them.
const MANY: usize = REGISTERS / 8;

/// A Redis-compatible HyperLogLog (see the module docs for the format).
///
/// After [`Hll::new`], [`Hll::add`] and [`Hll::merge`] it holds the exact bytes Redis would hold
/// for the same key after the same commands; [`Hll::add_all`] gives the same registers in an
/// encoding of its own. Equality is byte equality: the same registers in different encodings
/// are not equal.
#[derive(Clone, PartialEq, Eq)]
pub struct Hll {
    /// The whole Redis string, header included, always valid (checked by `from_bytes`, kept by
    /// every mutation).
    bytes: Vec<u8>,
}

impl Default for Hll {
    fn default() -> Self {
        Hll::new()
    }
}

impl fmt::Debug for Hll {
    // The bytes are up to 12 KiB; show what identifies the state instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hll")
            .field("encoding", &if self.is_dense() { "dense" } else { "sparse" })
            .field("len", &self.bytes.len())
            .field("cached_card", &format_args!("{:#018x}", self.cached_card()))
            .finish()
    }
}

impl Hll {
    /// An empty HLL exactly as Redis creates it on `PFADD` to a missing key: sparse, all registers
    /// in `XZERO` opcodes, and the cache flagged stale (Redis counts the key's creation as an
    /// update).
    pub fn new() -> Hll {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(MAGIC);
        bytes.push(ENC_SPARSE);
        bytes.extend_from_slice(&[0; 11]);
        let mut left = REGISTERS;
        while left > 0 {
            let run = left.min(SPARSE_XZERO_MAX_LEN);
            bytes.extend_from_slice(&xzero_op(run));
            left -= run;
        }
        let mut hll = Hll { bytes };
        hll.invalidate_cache();
        hll
    }

    /// Reads a HyperLogLog as Redis stores it (the value of `GET`), in either encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Hll, HllError> {
        if bytes.len() < HDR {
            return Err(HllError::TooShort { len: bytes.len() });
        }
        if &bytes[..4] != MAGIC {
            return Err(HllError::BadMagic { found: [bytes[0], bytes[1], bytes[2], bytes[3]] });
        }
        match bytes[4] {
            ENC_DENSE => {
                if bytes.len() != DENSE_SIZE {
                    return Err(HllError::DenseLength { len: bytes.len() });
                }
            }
            ENC_SPARSE => check_sparse(&bytes[HDR..])?,
            other => return Err(HllError::BadEncoding(other)),
        }
        Ok(Hll { bytes: bytes.to_vec() })
    }

    /// The bytes Redis's `GET` returns after the same commands (as long as no single-key
    /// `PFCOUNT` has refreshed Redis's cached cardinality in between; see [`Hll::count`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// `PFADD` of one element: returns true if a register changed (Redis then replies 1).
    #[inline]
    pub fn add(&mut self, element: &[u8]) -> bool {
        let (index, count) = pattern(element);
        let changed = if self.is_dense() {
            dense_set(self.dense_regs_mut(), index, count)
        } else {
            self.sparse_set(index, count)
        };
        if changed {
            self.invalidate_cache();
        }
        changed
    }

    /// `PFADD` of several elements: the registers (and so every count) of [`Hll::add`] of each
    /// in turn; returns true if a register changed.
    ///
    /// Adding to a sparse HLL walks and splices its opcodes, so a store applying hundreds of
    /// additions to one key would walk it hundreds of times. Here the additions to a sparse HLL
    /// are sorted and merged into its opcodes in one pass (or, from 2,048 of them, raised in
    /// an array of every register instead of sorted), which are written again with the longest
    /// runs each opcode allows, or dense where that would pass Redis's sparse limit. The
    /// bytes may then differ from those Redis builds one `PFADD` at a time (its opcodes depend on
    /// the order of additions), not the registers; Redis reads either.
    pub fn add_all<E: AsRef<[u8]>>(&mut self, elements: &[E]) -> bool {
        if self.is_dense() || elements.len() <= 2 {
            return elements.iter().fold(false, |changed, e| self.add(e.as_ref()) | changed);
        }
        let raises = elements.iter().map(|e| pattern(e.as_ref()));
        if elements.len() >= MANY {
            self.raise_unsorted(raises)
        } else {
            self.raise_sorted(raises.collect())
        }
    }

    /// `add_all` to a sparse HLL by sorting the raises and merging them into its opcodes.
    fn raise_sorted(&mut self, mut raises: Vec<(usize, u8)>) -> bool {
        raises.sort_unstable();
        let mut ops = Runs::default();
        let mut changed = false;
        let mut next = raises.iter().peekable();
        for_each_run(&self.bytes[HDR..], |first, len, value| {
            let mut at = first;
            let end = first + len;
            // The raises inside this run, in index order (several per index: the largest wins).
            while let Some(&&(index, _)) = next.peek()
                && index < end
            {
                let mut count = 0;
                while let Some(&&(i, c)) = next.peek()
                    && i == index
                {
                    count = count.max(c);
                    next.next();
                }
                if count > value {
                    ops.push(value, index - at);
                    ops.push(count, 1);
                    at = index + 1;
                    changed = true;
                }
            }
            ops.push(value, end - at);
        });
        if !changed {
            return false;
        }
        self.store(ops, |regs| {
            for (index, count) in raises {
                dense_set(regs, index, count);
            }
        });
        true
    }

    /// `add_all` to a sparse HLL through an array of every register, which costs a pass over
    /// the registers instead of a sort of the raises. It writes the same bytes as
    /// [`Hll::raise_sorted`]: both write each run of equal registers in the longest opcodes.
    fn raise_unsorted(&mut self, raises: impl Iterator<Item = (usize, u8)>) -> bool {
        let mut registers = [0u8; REGISTERS];
        self.max_into(&mut registers);
        let mut changed = false;
        for (index, count) in raises {
            if count > registers[index] {
                registers[index] = count;
                changed = true;
            }
        }
        if !changed {
            return false;
        }
        let mut ops = Runs::default();
        for run in registers.chunk_by(|a, b| a == b) {
            ops.push(run[0], run.len());
        }
        self.store(ops, |regs| {
            for (index, &value) in registers.iter().enumerate() {
                dense_write(regs, index, value);
            }
        });
        true
    }

    /// Writes the raised registers: as `ops`, or where those would pass Redis's sparse limit,
    /// dense, set by `dense` after promotion.
    fn store(&mut self, ops: Runs, dense: impl FnOnce(&mut [u8; DENSE_REGS])) {
        match ops.finish(SPARSE_MAX_BYTES - HDR) {
            Some(ops) => {
                self.bytes.truncate(HDR);
                self.bytes.extend_from_slice(&ops);
            }
            None => {
                self.promote();
                dense(self.dense_regs_mut());
            }
        }
        self.invalidate_cache();
    }

    /// `PFCOUNT` of this HLL. Always estimates from the registers: Redis would return its cached
    /// value when valid, which is the same number. Unlike Redis, this does not write the cache
    /// back into the bytes (it takes `&self`).
    pub fn count(&self) -> u64 {
        let mut histo = [0u32; 64];
        if self.is_dense() {
            dense_histogram(self.dense_regs(), &mut histo);
        } else {
            for_each_run(&self.bytes[HDR..], |_, len, value| histo[value as usize] += len as u32);
        }
        estimate(&histo)
    }

    /// `PFMERGE self other`: every register becomes the max of both.
    ///
    /// As in Redis, the result is dense if either input is dense; if both are sparse it stays
    /// sparse (registers set one by one in index order, promoting when Redis would), and the cache
    /// is always flagged stale.
    pub fn merge(&mut self, other: &Hll) {
        let mut mine = [0u8; REGISTERS];
        self.max_into(&mut mine);
        let mut max = mine;
        other.max_into(&mut max);
        if other.is_dense() && !self.is_dense() {
            self.promote();
        }
        for (index, (&want, &have)) in max.iter().zip(mine.iter()).enumerate() {
            // Redis calls the setter for every non-zero register, but it is a no-op unless the
            // value grows, so skipping those yields the same bytes.
            if want <= have {
                continue;
            }
            if self.is_dense() {
                dense_set(self.dense_regs_mut(), index, want);
            } else {
                self.sparse_set(index, want);
            }
        }
        self.invalidate_cache();
    }

    fn is_dense(&self) -> bool {
        self.bytes[4] == ENC_DENSE
    }

    fn cached_card(&self) -> u64 {
        u64::from_le_bytes(self.bytes[8..HDR].try_into().expect("header is 16 bytes"))
    }

    /// Redis's `HLL_INVALIDATE_CACHE`: only the flag changes, the stale value stays.
    fn invalidate_cache(&mut self) {
        self.bytes[15] |= 0x80;
    }

    fn dense_regs(&self) -> &[u8; DENSE_REGS] {
        self.bytes[HDR..].try_into().expect("dense HLL has its fixed length")
    }

    fn dense_regs_mut(&mut self) -> &mut [u8; DENSE_REGS] {
        (&mut self.bytes[HDR..]).try_into().expect("dense HLL has its fixed length")
    }

    /// Raises `max[i]` to each register's value.
    fn max_into(&self, max: &mut [u8; REGISTERS]) {
        if self.is_dense() {
            for_each_dense(self.dense_regs(), |i, v| max[i] = max[i].max(v));
        } else {
            for_each_run(&self.bytes[HDR..], |first, len, value| {
                for m in &mut max[first..first + len] {
                    *m = (*m).max(value);
                }
            });
        }
    }

    /// Redis's `hllSparseToDense`: same header (cache included), dense encoding.
    fn promote(&mut self) {
        let mut dense = vec![0u8; DENSE_SIZE];
        dense[..HDR].copy_from_slice(&self.bytes[..HDR]);
        dense[4] = ENC_DENSE;
        {
            let regs: &mut [u8; DENSE_REGS] = (&mut dense[HDR..]).try_into().expect("sized");
            for_each_run(&self.bytes[HDR..], |first, len, value| {
                if value > 0 {
                    for i in first..first + len {
                        dense_write(regs, i, value);
                    }
                }
            });
        }
        self.bytes = dense;
    }

    /// Redis's `hllSparseSet`: raises register `index` to `count` in the sparse encoding,
    /// splitting the opcode that covers it and then merging adjacent equal `VAL` opcodes in a
    /// short window exactly as Redis does, or promoting to dense where Redis does. Returns true if
    /// the register changed. Does not touch the cache flag.
    fn sparse_set(&mut self, index: usize, count: u8) -> bool {
        if count > SPARSE_VAL_MAX_VALUE {
            return self.promote_and_set(index, count);
        }

        // Step 1: find the opcode covering `index`, and the one before it.
        let bytes = &self.bytes;
        let mut p = HDR;
        let mut first = 0;
        let mut prev = None;
        let (mut span, mut oplen);
        loop {
            // A valid sparse HLL covers all registers, so an opcode always covers `index`.
            let op = bytes[p];
            (span, oplen) = if is_zero(op) {
                (zero_len(op), 1)
            } else if is_val(op) {
                (val_len(op), 1)
            } else {
                (xzero_len(op, bytes[p + 1]), 2)
            };
            if index < first + span {
                break;
            }
            prev = Some(p);
            p += oplen;
            first += span;
        }
        let op = bytes[p];

        // Step 2: cases that update the opcode in place.
        let in_place = if is_val(op) {
            if val_value(op) >= count {
                return false;
            }
            span == 1
        } else {
            is_zero(op) && span == 1
        };

        if in_place {
            self.bytes[p] = val_op(count, 1);
        } else {
            // General case: split the opcode into at most 3 (XZERO-VAL-XZERO is 5 bytes).
            let mut seq = [0u8; 5];
            let mut n = 0;
            let last = first + span - 1;
            if is_val(op) {
                let cur = val_value(op);
                if index != first {
                    seq[n] = val_op(cur, index - first);
                    n += 1;
                }
                seq[n] = val_op(count, 1);
                n += 1;
                if index != last {
                    seq[n] = val_op(cur, last - index);
                    n += 1;
                }
            } else {
                if index != first {
                    n += zero_run_op(&mut seq[n..], index - first);
                }
                seq[n] = val_op(count, 1);
                n += 1;
                if index != last {
                    n += zero_run_op(&mut seq[n..], last - index);
                }
            }

            // Step 3: substitute, unless growing would pass the sparse size limit.
            if n > oplen && self.bytes.len() + (n - oplen) > SPARSE_MAX_BYTES {
                return self.promote_and_set(index, count);
            }
            self.bytes.splice(p..p + oplen, seq[..n].iter().copied());
        }

        // Step 4: merge adjacent VAL opcodes of equal value, scanning at most 5 opcodes from the
        // one before the change (Redis does not look further, so neither may we).
        let bytes = &mut self.bytes;
        let mut p = prev.unwrap_or(HDR);
        let mut scan = 5;
        while p < bytes.len() && scan > 0 {
            scan -= 1;
            let op = bytes[p];
            if is_xzero(op) {
                p += 2;
                continue;
            }
            if is_zero(op) {
                p += 1;
                continue;
            }
            if let Some(&next) = bytes.get(p + 1)
                && is_val(next)
                && val_value(op) == val_value(next)
            {
                let len = val_len(op) + val_len(next);
                if len <= SPARSE_VAL_MAX_LEN {
                    bytes[p + 1] = val_op(val_value(op), len);
                    bytes.remove(p);
                    // Stay on the merged opcode: it may merge with the next one too.
                    continue;
                }
            }
            p += 1;
        }
        true
    }

    /// The `promote:` path of `hllSparseSet`: convert, then set in dense. The register always
    /// grows here (a sparse register is at most 32, or the caller already checked it is lower).
    fn promote_and_set(&mut self, index: usize, count: u8) -> bool {
        self.promote();
        dense_set(self.dense_regs_mut(), index, count)
    }
}

/// `PFCOUNT k1 k2 …`: the estimate for the union (register-wise max) of several HLLs.
pub fn count_union(hlls: &[Hll]) -> u64 {
    let mut max = [0u8; REGISTERS];
    for hll in hlls {
        hll.max_into(&mut max);
    }
    let mut histo = [0u32; 64];
    for &v in &max {
        histo[v as usize] += 1;
    }
    estimate(&histo)
}

/// Why bytes are not a valid Redis HyperLogLog.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HllError {
    /// Shorter than the 16-byte header.
    #[error("not a HyperLogLog: {len} bytes, shorter than the 16-byte header")]
    TooShort {
        /// Length of the input.
        len: usize,
    },
    /// The first 4 bytes are not `HYLL`.
    #[error("not a HyperLogLog: magic is {found:02x?}, expected \"HYLL\"")]
    BadMagic {
        /// The first 4 bytes found.
        found: [u8; 4],
    },
    /// The encoding byte is neither 0 (dense) nor 1 (sparse).
    #[error("invalid HyperLogLog: encoding byte {0}, expected 0 (dense) or 1 (sparse)")]
    BadEncoding(u8),
    /// A dense HLL whose length is not exactly header + 12288 bytes.
    #[error("invalid dense HyperLogLog: {len} bytes, expected {DENSE_SIZE}")]
    DenseLength {
        /// Length of the input.
        len: usize,
    },
    /// A sparse HLL whose last opcode is cut off.
    #[error("invalid sparse HyperLogLog: 2-byte XZERO opcode cut off at byte {offset}")]
    SparseTruncated {
        /// Offset of the cut opcode from the start of the bytes.
        offset: usize,
    },
    /// Sparse opcodes that describe more than 16384 registers.
    #[error(
        "invalid sparse HyperLogLog: opcode at byte {offset} reaches register {reach}, past the \
         16384 registers"
    )]
    SparseOverrun {
        /// Offset of the overrunning opcode from the start of the bytes.
        offset: usize,
        /// Number of registers covered up to and including that opcode.
        reach: usize,
    },
    /// Sparse opcodes that describe fewer than 16384 registers.
    #[error("invalid sparse HyperLogLog: opcodes cover {covered} of the 16384 registers")]
    SparseShort {
        /// Number of registers covered.
        covered: usize,
    },
}

/// Checks that sparse opcodes are complete and cover exactly 16384 registers.
fn check_sparse(ops: &[u8]) -> Result<(), HllError> {
    let mut p = 0;
    let mut covered = 0;
    while p < ops.len() {
        let op = ops[p];
        let (span, oplen) = if is_xzero(op) {
            let Some(&low) = ops.get(p + 1) else {
                return Err(HllError::SparseTruncated { offset: HDR + p });
            };
            (xzero_len(op, low), 2)
        } else if is_zero(op) {
            (zero_len(op), 1)
        } else {
            (val_len(op), 1)
        };
        covered += span;
        if covered > REGISTERS {
            return Err(HllError::SparseOverrun { offset: HDR + p, reach: covered });
        }
        p += oplen;
    }
    if covered != REGISTERS {
        return Err(HllError::SparseShort { covered });
    }
    Ok(())
}

// Sparse opcodes, as Redis's HLL_SPARSE_* macros.

fn is_zero(op: u8) -> bool {
    op & 0xc0 == 0x00
}

fn is_xzero(op: u8) -> bool {
    op & 0xc0 == 0x40
}

fn is_val(op: u8) -> bool {
    op & 0x80 != 0
}

fn zero_len(op: u8) -> usize {
    (op & 0x3f) as usize + 1
}

fn xzero_len(op: u8, low: u8) -> usize {
    (((op & 0x3f) as usize) << 8 | low as usize) + 1
}

fn val_value(op: u8) -> u8 {
    ((op >> 2) & 0x1f) + 1
}

fn val_len(op: u8) -> usize {
    (op & 0x03) as usize + 1
}

fn val_op(value: u8, len: usize) -> u8 {
    debug_assert!((1..=SPARSE_VAL_MAX_VALUE).contains(&value));
    debug_assert!((1..=SPARSE_VAL_MAX_LEN).contains(&len));
    0x80 | (value - 1) << 2 | (len - 1) as u8
}

fn xzero_op(len: usize) -> [u8; 2] {
    let l = len - 1;
    [0x40 | (l >> 8) as u8, l as u8]
}

/// Sparse opcodes written from runs of registers, each run in the longest opcodes it allows.
#[derive(Default)]
struct Runs {
    ops: Vec<u8>,
    /// The run not yet written: its value and length.
    value: u8,
    len: usize,
    /// A value over what sparse holds was pushed.
    too_high: bool,
}

impl Runs {
    fn push(&mut self, value: u8, len: usize) {
        if len == 0 {
            return;
        }
        if value != self.value {
            self.flush();
            self.value = value;
        }
        self.len += len;
    }

    fn flush(&mut self) {
        let (value, mut left) = (self.value, std::mem::take(&mut self.len));
        if value > SPARSE_VAL_MAX_VALUE {
            self.too_high = true;
            return;
        }
        while left > 0 {
            let len = if value == 0 {
                let len = left.min(SPARSE_XZERO_MAX_LEN);
                let mut op = [0; 2];
                let n = zero_run_op(&mut op, len);
                self.ops.extend_from_slice(&op[..n]);
                len
            } else {
                let len = left.min(SPARSE_VAL_MAX_LEN);
                self.ops.push(val_op(value, len));
                len
            };
            left -= len;
        }
    }

    /// The opcodes, or `None` if a value is over 32 or they take more than `max_len` bytes.
    fn finish(mut self, max_len: usize) -> Option<Vec<u8>> {
        self.flush();
        (!self.too_high && self.ops.len() <= max_len).then_some(self.ops)
    }
}

/// Writes a run of `len` zero registers as ZERO (up to 64) or XZERO; returns its byte length.
fn zero_run_op(out: &mut [u8], len: usize) -> usize {
    if len > SPARSE_ZERO_MAX_LEN {
        out[..2].copy_from_slice(&xzero_op(len));
        2
    } else {
        out[0] = (len - 1) as u8;
        1
    }
}

/// Calls `f(first_register, run_length, value)` for each opcode of valid sparse opcodes.
fn for_each_run(ops: &[u8], mut f: impl FnMut(usize, usize, u8)) {
    let mut p = 0;
    let mut first = 0;
    while p < ops.len() {
        let op = ops[p];
        let (len, value, oplen) = if is_zero(op) {
            (zero_len(op), 0, 1)
        } else if is_xzero(op) {
            (xzero_len(op, ops[p + 1]), 0, 2)
        } else {
            (val_len(op), val_value(op), 1)
        };
        f(first, len, value);
        first += len;
        p += oplen;
    }
}

// Dense registers: register i is the 6 bits starting at bit 6*i, least significant bit first.

/// The byte offset of a 2-byte window holding register `index`, and the shift within it.
/// The last register sits in the last byte alone, so its window starts one byte earlier rather
/// than reading past the end (Redis reads the string's NUL terminator instead).
#[inline]
fn dense_window(index: usize) -> (usize, usize) {
    let bit = index * 6;
    let start = (bit / 8).min(DENSE_REGS - 2);
    (start, bit - start * 8)
}

#[inline]
fn dense_set(regs: &mut [u8; DENSE_REGS], index: usize, count: u8) -> bool {
    let (start, shift) = dense_window(index);
    let w = u16::from_le_bytes([regs[start], regs[start + 1]]);
    let old = ((w >> shift) as u8) & REGISTER_MAX;
    if count <= old {
        return false;
    }
    let w = (w & !((REGISTER_MAX as u16) << shift)) | (count as u16) << shift;
    regs[start..start + 2].copy_from_slice(&w.to_le_bytes());
    true
}

/// Unconditional write, for building a dense HLL from registers.
fn dense_write(regs: &mut [u8; DENSE_REGS], index: usize, value: u8) {
    let (start, shift) = dense_window(index);
    let w = u16::from_le_bytes([regs[start], regs[start + 1]]);
    let w = (w & !((REGISTER_MAX as u16) << shift)) | (value as u16) << shift;
    regs[start..start + 2].copy_from_slice(&w.to_le_bytes());
}

/// Calls `f(index, value)` for every register, 4 registers per 3 bytes.
#[inline]
fn for_each_dense(regs: &[u8; DENSE_REGS], mut f: impl FnMut(usize, u8)) {
    for (k, b) in regs.chunks_exact(3).enumerate() {
        let i = k * 4;
        f(i, b[0] & REGISTER_MAX);
        f(i + 1, (b[0] >> 6 | b[1] << 2) & REGISTER_MAX);
        f(i + 2, (b[1] >> 4 | b[2] << 4) & REGISTER_MAX);
        f(i + 3, b[2] >> 2);
    }
}

fn dense_histogram(regs: &[u8; DENSE_REGS], histo: &mut [u32; 64]) {
    for_each_dense(regs, |_, v| histo[v as usize] += 1);
}

/// Redis's `hllPatLen`: the register index and the length of the "0…01" pattern in the rest of
/// the hash. A sentinel bit at position Q caps the count at Q + 1 = 51.
#[inline]
fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur_hash64a(element, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | 1 << Q;
    (index, rest.trailing_zeros() as u8 + 1)
}

/// MurmurHash64A (MurmurHash2, 64-bit), reading 8-byte blocks little-endian as Redis does on
/// every architecture.
#[inline]
fn murmur_hash64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut blocks = key.chunks_exact(8);
    for block in &mut blocks {
        let mut k = u64::from_le_bytes(block.try_into().expect("8-byte block"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Redis's `hllCount` estimate from the register histogram (Ertl, "New cardinality estimation
/// algorithms for HyperLogLog sketches", arXiv:1702.01284). The float operations are kept in
/// Redis's order so the rounded result matches it exactly.
fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let q = Q as usize;
    let mut z = m * tau((m - histo[q + 1] as f64) / m);
    for j in (1..=q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    // `llroundl` rounds half away from zero, as `f64::round` does; all zero registers give
    // z = inf and so 0.
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_prev = z;
        z += x * y;
        y += y;
        if z == z_prev {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_prev = z;
        y *= 0.5;
        // Redis writes pow(1 - x, 2), which compilers turn into this exact product.
        let d = 1.0 - x;
        z -= d * d * y;
        if z == z_prev {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An element whose pattern length is 33, too big for a sparse VAL (found by brute force).
    const COUNT_33: u64 = 3_130_853_818;

    fn hll_of(ids: std::ops::Range<u64>) -> Hll {
        let mut hll = Hll::new();
        for id in ids {
            hll.add(&id.to_le_bytes());
        }
        hll
    }

    fn sparse(ops: &[u8]) -> Vec<u8> {
        let mut bytes = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        bytes.extend_from_slice(ops);
        bytes
    }

    #[test]
    fn new_is_what_pfadd_creates() {
        // GET after `PFADD k` on a missing key, from Redis 7.
        let expected = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff";
        assert_eq!(Hll::new().to_bytes(), expected);
        assert_eq!(Hll::default(), Hll::new());
        assert_eq!(Hll::new().count(), 0);
    }

    #[test]
    fn add_reports_changes_and_counts_small_sets_exactly() {
        let mut hll = Hll::new();
        assert!(hll.add(b"a"));
        assert!(!hll.add(b"a"));
        assert!(hll.add(b""));
        assert!(hll.add(b"b"));
        assert_eq!(hll.count(), 3);
        assert!(!hll.is_dense());
    }

    #[test]
    fn adding_many_at_once_gives_the_registers_of_adding_one_by_one() {
        let mut next = crate::testing::below(0x1234_5678_9abc_def1);
        let registers = |hll: &Hll| {
            let mut r = [0u8; REGISTERS];
            hll.max_into(&mut r);
            r
        };
        // From empty, sparse and dense starts; batches with repeats, small and past the sparse
        // limit, and one with an element whose register value (33) forces promotion.
        for start in [0u64, 50, 4000] {
            for batch in [3usize, 40, 600, 5000] {
                let case = format!("start {start}, batch {batch}");
                let mut one_by_one = hll_of(0..start);
                let mut at_once = one_by_one.clone();
                let mut elements: Vec<[u8; 8]> = (0..batch)
                    .map(|_| (10_000 + next(batch as u64 / 2 + 1)).to_le_bytes())
                    .collect();
                if batch == 40 {
                    elements.insert(17, COUNT_33.to_le_bytes());
                }
                let mut changed = false;
                for e in &elements {
                    changed |= one_by_one.add(e);
                }
                assert_eq!(at_once.add_all(&elements), changed, "{case}");
                assert_eq!(registers(&at_once), registers(&one_by_one), "{case}");
                assert_eq!(at_once.count(), one_by_one.count(), "{case}");
                // A valid Redis HLL, sparse whenever adding one by one kept it sparse.
                assert_eq!(Hll::from_bytes(&at_once.to_bytes()).as_ref(), Ok(&at_once), "{case}");
                assert!(one_by_one.is_dense() || !at_once.is_dense(), "{case}");
            }
        }
        let mut hll = hll_of(0..10);
        let before = hll.clone();
        let again: Vec<[u8; 8]> = (0..10u64).map(u64::to_le_bytes).collect();
        assert!(!hll.add_all(&again), "nothing new: nothing changes");
        assert_eq!(hll, before);
    }

    #[test]
    fn sorting_and_register_passes_write_the_same_bytes() {
        let mut next = crate::testing::below(0x0ddb_a11c_afe5_f00d);
        // Sparse starts (dense ones take `add`); few distinct registers (it stays sparse), many
        // (it goes dense), and a value of 33.
        let cases = [(0u64, 90u64, false), (50, 900, false), (0, 20_000, false), (300, 30, true)];
        for (start, distinct, with_33) in cases {
            let case = format!("start {start}, {distinct} distinct, 33: {with_33}");
            let base = hll_of(0..start);
            assert!(!base.is_dense());
            let mut raises: Vec<(usize, u8)> =
                (0..MANY + 10).map(|_| pattern(&(10_000 + next(distinct)).to_le_bytes())).collect();
            if with_33 {
                raises.push(pattern(&COUNT_33.to_le_bytes()));
            }
            let (mut sorted, mut unsorted) = (base.clone(), base.clone());
            assert!(sorted.raise_sorted(raises.clone()));
            assert!(unsorted.raise_unsorted(raises.iter().copied()));
            assert_eq!(sorted, unsorted, "{case}");
            assert_eq!(unsorted.is_dense(), with_33 || distinct > 900, "{case}");
            assert!(!unsorted.raise_unsorted(raises.into_iter()), "{case}: nothing new");
        }
    }

    #[test]
    fn sparse_opcodes_take_the_longest_runs() {
        let mut runs = Runs::default();
        for (value, len) in [(0, 60), (0, 40), (3, 4), (3, 2), (0, 0), (0, 94), (32, 1)] {
            runs.push(value, len);
        }
        runs.push(0, REGISTERS - 201);
        let mut expected = xzero_op(100).to_vec();
        expected.extend([val_op(3, 4), val_op(3, 2)]);
        expected.extend(xzero_op(94));
        expected.push(val_op(32, 1));
        expected.extend(xzero_op(REGISTERS - 201));
        assert_eq!(runs.finish(usize::MAX), Some(expected));
        let mut runs = Runs::default();
        runs.push(33, 1);
        assert_eq!(runs.finish(usize::MAX), None, "33 does not fit sparse");
        let mut runs = Runs::default();
        (0..200).for_each(|i| runs.push(1 + i % 2, 1));
        assert_eq!(runs.finish(100), None, "200 opcodes do not fit 100 bytes");
    }

    #[test]
    fn pattern_matches_redis() {
        // Redis 7: `PFADD k <0u64 LE>` gives opcodes XZERO(849) VAL(1,1) XZERO(15534).
        assert_eq!(pattern(&0u64.to_le_bytes()), (849, 1));
        assert_eq!(pattern(&COUNT_33.to_le_bytes()), (3655, 33));
    }

    #[test]
    fn a_pattern_over_32_promotes_to_dense() {
        let mut hll = hll_of(0..10);
        assert!(!hll.is_dense());
        assert!(hll.add(&COUNT_33.to_le_bytes()));
        assert!(hll.is_dense());
        assert_eq!(hll.to_bytes().len(), DENSE_SIZE);
        assert_eq!(hll.count(), 11);
    }

    #[test]
    fn growing_past_the_sparse_limit_promotes_to_dense() {
        let mut hll = Hll::new();
        let mut id = 0u64;
        while !hll.is_dense() {
            let before = hll.to_bytes().len();
            assert!(before <= SPARSE_MAX_BYTES, "sparse grew to {before} bytes");
            hll.add(&id.to_le_bytes());
            id += 1;
        }
        assert!(id > 1000, "promoted early, after {id} elements");
    }

    #[test]
    fn dense_registers_pack_like_redis() {
        let mut regs = [0u8; DENSE_REGS];
        for i in 0..REGISTERS {
            dense_write(&mut regs, i, (i % 64) as u8);
        }
        // Redis's layout: register 0 in the low 6 bits of byte 0, register 1 in its top 2 bits
        // and the low 4 bits of byte 1, and so on; the last register ends the last byte.
        // Registers 0..4 hold 0, 1, 2, 3: bytes 01000000, 00100000, 00001100.
        assert_eq!(regs[..3], [0x40, 0x20, 0x0c]);
        assert_eq!(regs[DENSE_REGS - 1] >> 2, (REGISTERS - 1) as u8 % 64);
        let mut seen = Vec::new();
        for_each_dense(&regs, |i, v| seen.push((i, v)));
        assert_eq!(seen.len(), REGISTERS);
        for (i, v) in seen {
            assert_eq!(v, (i % 64) as u8, "register {i}");
        }
        // Setting one register leaves its neighbours alone, at both ends.
        for i in [0, 1, 2, 3, REGISTERS - 2, REGISTERS - 1] {
            let mut r = [0xffu8; DENSE_REGS];
            dense_write(&mut r, i, 0);
            assert!(dense_set(&mut r, i, 5));
            assert!(!dense_set(&mut r, i, 5));
            for_each_dense(&r, |j, v| assert_eq!(v, if j == i { 5 } else { 63 }, "{i}/{j}"));
        }
    }

    #[test]
    fn round_trips_both_encodings() {
        for hll in [Hll::new(), hll_of(0..100), hll_of(0..10_000)] {
            let bytes = hll.to_bytes();
            let back = Hll::from_bytes(&bytes).unwrap();
            assert_eq!(back, hll);
            assert_eq!(back.to_bytes(), bytes);
            assert_eq!(back.count(), hll.count());
        }
        assert!(hll_of(0..10_000).is_dense());
    }

    #[test]
    fn round_trip_keeps_the_cached_cardinality() {
        // After a Redis PFCOUNT the cache holds the count; PFADD then only sets the stale flag.
        let mut bytes = hll_of(0..5).to_bytes();
        bytes[8..16].copy_from_slice(&5u64.to_le_bytes());
        let mut hll = Hll::from_bytes(&bytes).unwrap();
        assert_eq!(hll.to_bytes(), bytes);
        assert!(!hll.add(&0u64.to_le_bytes()));
        assert_eq!(hll.to_bytes(), bytes, "no change, cache stays valid");
        assert!(hll.add(&5u64.to_le_bytes()));
        assert_eq!(hll.to_bytes()[8..16], [5, 0, 0, 0, 0, 0, 0, 0x80]);
    }

    #[test]
    fn rejects_malformed_bytes() {
        let err = |b: &[u8]| Hll::from_bytes(b).unwrap_err();
        assert_eq!(err(b"HYLL"), HllError::TooShort { len: 4 });
        let mut bad_magic = Hll::new().to_bytes();
        bad_magic[..4].copy_from_slice(b"HYPE");
        assert!(matches!(err(&bad_magic), HllError::BadMagic { .. }));
        let mut bad_enc = Hll::new().to_bytes();
        bad_enc[4] = 2;
        assert_eq!(err(&bad_enc), HllError::BadEncoding(2));

        let dense = hll_of(0..10_000).to_bytes();
        assert_eq!(err(&dense[..DENSE_SIZE - 1]), HllError::DenseLength { len: DENSE_SIZE - 1 });
        let mut long = dense.clone();
        long.push(0);
        assert_eq!(err(&long), HllError::DenseLength { len: DENSE_SIZE + 1 });
        let mut sparse_header_dense = Hll::new().to_bytes();
        sparse_header_dense[4] = ENC_DENSE;
        assert!(matches!(err(&sparse_header_dense), HllError::DenseLength { len: 18 }));

        // All XZERO (16384) then one more ZERO register.
        assert_eq!(
            err(&sparse(&[0x7f, 0xff, 0x00])),
            HllError::SparseOverrun { offset: 18, reach: 16385 }
        );
        // A VAL opcode running past the end.
        assert_eq!(
            err(&sparse(&[0x7f, 0xfd, 0x83])),
            HllError::SparseOverrun { offset: 18, reach: 16386 }
        );
        assert_eq!(err(&sparse(&[0x7f, 0xfe])), HllError::SparseShort { covered: 16383 });
        assert_eq!(err(&sparse(&[])), HllError::SparseShort { covered: 0 });
        assert_eq!(err(&sparse(&[0x7f, 0xfe, 0x40])), HllError::SparseTruncated { offset: 18 });
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let msg = |b: &[u8]| Hll::from_bytes(b).unwrap_err().to_string();
        assert!(msg(b"").contains("16-byte header"));
        assert!(msg(b"HYPE\x01\0\0\0\0\0\0\0\0\0\0\0").contains("\"HYLL\""));
        assert!(msg(b"HYLL\x07\0\0\0\0\0\0\0\0\0\0\0").contains("encoding byte 7"));
        assert!(msg(&sparse(&[0x7f, 0xfe])).contains("16383 of the 16384"));
    }

    #[test]
    fn accepts_non_canonical_sparse_opcodes() {
        // Redis accepts any opcodes that cover the registers exactly, e.g. ZERO runs instead of
        // one XZERO; they must read and count like the canonical form.
        let hll = Hll::from_bytes(&sparse(&[0x3f; 256])).unwrap();
        assert_eq!(hll.count(), 0);
        let mut ops = vec![0x80 | (4 << 2) | 3]; // VAL: 4 registers of value 5
        ops.extend_from_slice(&xzero_op(REGISTERS - 4));
        let mut hll = Hll::from_bytes(&sparse(&ops)).unwrap();
        assert_eq!(hll.count(), 4);
        let mut max = [0u8; REGISTERS];
        hll.max_into(&mut max);
        assert_eq!(max[..5], [5, 5, 5, 5, 0]);
        hll.merge(&Hll::new());
        assert_eq!(hll.count(), 4);
    }

    #[test]
    fn merge_takes_register_maxima() {
        let a = hll_of(0..300);
        let b = hll_of(200..600);
        let mut ab = a.clone();
        ab.merge(&b);
        assert!(!ab.is_dense(), "two sparse inputs stay sparse, as in Redis");
        assert_eq!(ab.count(), count_union(&[a.clone(), b.clone()]));
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab.count(), ba.count());
        let mut max = [0u8; REGISTERS];
        hll_of(0..600).max_into(&mut max);
        let mut merged = [0u8; REGISTERS];
        ab.max_into(&mut merged);
        assert_eq!(merged, max, "the union of the element sets");

        // A dense input makes the result dense, with the same registers.
        let big = hll_of(0..20_000);
        let mut small = hll_of(0..10);
        small.merge(&big);
        assert!(small.is_dense());
        let mut big_merged = big.clone();
        big_merged.merge(&hll_of(0..10));
        assert_eq!(small.to_bytes()[16..], big_merged.to_bytes()[16..]);
        assert_eq!(small.count(), big.count());
    }

    #[test]
    fn merging_an_empty_hll_only_invalidates_the_cache() {
        let hll = hll_of(0..50);
        let mut bytes = hll.to_bytes();
        bytes[8..16].copy_from_slice(&50u64.to_le_bytes());
        let mut cached = Hll::from_bytes(&bytes).unwrap();
        cached.merge(&Hll::new());
        bytes[15] |= 0x80;
        assert_eq!(cached.to_bytes(), bytes);
    }

    #[test]
    fn count_union_of_nothing_or_one() {
        assert_eq!(count_union(&[]), 0);
        let hll = hll_of(0..1000);
        assert_eq!(count_union(std::slice::from_ref(&hll)), hll.count());
        assert_eq!(count_union(&[hll.clone(), hll.clone(), Hll::new()]), hll.count());
    }

    #[test]
    fn estimator_edge_cases() {
        let mut histo = [0u32; 64];
        histo[0] = REGISTERS as u32;
        assert_eq!(estimate(&histo), 0);
        // Every register saturated: tau(0) = 0, the estimate is finite and huge.
        let mut histo = [0u32; 64];
        histo[51] = REGISTERS as u32;
        assert!(estimate(&histo) > 1 << 50);
    }

    #[test]
    fn debug_is_short() {
        let s = format!("{:?}", hll_of(0..10_000));
        assert!(s.contains("dense") && s.len() < 100, "{s}");
    }
}
