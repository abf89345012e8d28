#!/usr/bin/env bash
# Captures HyperLogLog bytes and counts from a real Redis, as fixtures for
# crates/core/tests/hll_redis.rs, which replays the same commands with footfall's `Hll` and
# expects the same bytes and counts.
#
# Starts its own throwaway redis-server (no persistence, listening only on a unix socket in a
# temp dir, so it can't clash with another server or port), runs the scenarios below and writes
# crates/core/tests/fixtures/hll.txt. Needs redis-server and redis-cli on PATH.
#
# Fixture lines (whitespace separated; `#` starts a comment):
#   pfadd KEY SPEC CHANGED DENSE_AT TRACE
#                                    PFADD each element of SPEC in order, one command each;
#                                    CHANGED = how many replied 1, DENSE_AT = 0-based index of
#                                    the element after which the key was first dense, or -1;
#                                    TRACE = SHA-1 chain over the bytes after every element while
#                                    the key is sparse (t = sha1hex(t .. bytes), from t = ""), so
#                                    that every intermediate sparse state is checked
#   get KEY LEN HEX|sha1:SHA1        GET KEY: full hex for small values, else SHA-1 of the bytes
#   pfcount N KEY...                 PFCOUNT KEY... replied N (one key: Redis also writes N
#                                    into the key's cached cardinality)
#   pfmerge DEST SRC                 PFMERGE DEST SRC
#   todense KEY                      PFDEBUG TODENSE KEY (same header, dense encoding)
# SPEC is comma-separated segments: u64:A:B (i in A..B as 8-byte little-endian integers, as
# footfall adds visitor ids), str:PREFIX:A:B (PREFIX followed by i in decimal), hex:HEX (one
# literal element, possibly empty) and empty (PFADD with no element, which creates the key).
set -euo pipefail

cd "$(dirname "$0")/.."
out=crates/core/tests/fixtures/hll.txt
tmp=$(mktemp -d)
sock="$tmp/redis.sock"

redis-server --port 0 --unixsocket "$sock" --dir "$tmp" --save '' --appendonly no \
    --logfile "$tmp/redis.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
    redis-cli -s "$sock" PING >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -s "$sock" PING >/dev/null

rc() { redis-cli -s "$sock" --raw "$@"; }

# PFADD every element of the segments in ARGV, one command per element (so the reply says
# whether that element changed a register), noting when the key first turns dense.
read -r -d '' ADD_LUA <<'LUA' || true
local key = KEYS[1]
local changed, dense_at, n, trace = 0, -1, 0, ''
local function add(e)
  if redis.call('PFADD', key, e) == 1 then changed = changed + 1 end
  if dense_at < 0 then
    local s = redis.call('GET', key)
    if string.byte(s, 5) == 0 then dense_at = n else trace = redis.sha1hex(trace .. s) end
  end
  n = n + 1
end
local function le64(i)
  local b = {}
  for k = 1, 8 do b[k] = i % 256; i = math.floor(i / 256) end
  return string.char(unpack(b))
end
for _, seg in ipairs(ARGV) do
  local kind, rest = string.match(seg, '^(%w+):?(.*)$')
  if kind == 'empty' then
    redis.call('PFADD', key)
  elseif kind == 'u64' then
    local a, b = string.match(rest, '^(%d+):(%d+)$')
    for i = tonumber(a), tonumber(b) - 1 do add(le64(i)) end
  elseif kind == 'str' then
    local p, a, b = string.match(rest, '^(.*):(%d+):(%d+)$')
    for i = tonumber(a), tonumber(b) - 1 do add(p .. string.format('%d', i)) end
  elseif kind == 'hex' then
    add((string.gsub(rest, '..', function(h) return string.char(tonumber(h, 16)) end)))
  else
    return redis.error_reply('bad segment ' .. seg)
  end
end
if trace == '' then trace = '-' end
return {changed, dense_at, trace}
LUA

read -r -d '' GET_LUA <<'LUA' || true
local s = redis.call('GET', KEYS[1])
if #s <= 600 then
  return {#s, (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))}
end
return {#s, 'sha1:' .. redis.sha1hex(s)}
LUA

pfadd() { # KEY SPEC
    local segs res
    IFS=',' read -ra segs <<<"$2"
    mapfile -t res < <(rc EVAL "$ADD_LUA" 1 "$1" "${segs[@]}")
    echo "pfadd $1 $2 ${res[0]} ${res[1]} ${res[2]}" >>"$out"
    DENSE_AT=${res[1]}
}
get() { # KEY
    local res
    mapfile -t res < <(rc EVAL "$GET_LUA" 1 "$1")
    echo "get $1 ${res[0]} ${res[1]}" >>"$out"
}
pfcount() { # KEY...
    echo "pfcount $(rc PFCOUNT "$@") $*" >>"$out"
}
todense() { # KEY
    rc PFDEBUG TODENSE "$1" >/dev/null
    echo "todense $1" >>"$out"
}
pfmerge() { # DEST SRC
    rc PFMERGE "$1" "$2" >/dev/null
    echo "pfmerge $1 $2" >>"$out"
}

mkdir -p "$(dirname "$out")"
{
    echo "# HyperLogLog fixtures captured from $(redis-server --version | cut -d' ' -f1-3)"
    echo "# by scripts/capture-hll-fixtures.sh; do not edit by hand (format: see the script)."
} >"$out"

# An empty HLL as PFADD creates it, and the cache PFCOUNT writes into it.
pfadd empty empty
get empty
pfcount empty
get empty

# Strings, the empty string, then PFCOUNT's cache write and its invalidation by PFADD.
pfadd s hex:61,hex:62,hex:63
get s
pfadd s hex:,str:item-:0:10
get s
pfcount s
get s
pfadd s str:item-:0:10
get s
pfadd s str:item-:10:20
get s
pfcount s

# Visitor ids (u64 little-endian), every step of a small sparse HLL, then bigger steps.
for i in $(seq 0 39); do
    pfadd u "u64:$i:$((i + 1))"
    get u
done
pfadd u u64:40:100
get u
pfadd u u64:100:400
get u
pfcount u
get u
pfadd u u64:400:1000
get u
pfcount u

# Growing until the sparse form passes hll-sparse-max-bytes and Redis promotes it; then the
# largest sparse form, one element before that.
pfadd big5k u64:0:5000
promoted_at=$DENSE_AT
get big5k
pfcount big5k
get big5k
pfadd pre "u64:0:$promoted_at"
get pre
pfcount pre
pfadd pre "u64:$promoted_at:$((promoted_at + 1))"
get pre

pfadd big100k u64:0:100000
get big100k
pfcount big100k
pfadd words str:visitor-:0:20000
get words
pfcount words

# Elements whose pattern length is over 32 (found by brute force: 3130853818 gives 33,
# 16048431967 gives 36): too big for a sparse VAL opcode, so Redis promotes at once.
pfadd val33 u64:0:10,hex:ba099dba00000000
get val33
pfcount val33
pfadd val36 hex:5fa38fbc03000000
get val36
pfcount val36
pfadd big5k hex:5fa38fbc03000000
get big5k

# More sequences up to and past promotion, each sparse step checked through the trace.
pfadd t1 str:page-:0:1800
pfadd t2 u64:5000000:5001800
pfadd t3 str:/products/:0:1800
pfadd t4 u64:1000000000000:1000000001800
for k in 1 2 3 4; do
    pfcount "t$k"
done

# Unions (PFCOUNT over several keys).
pfcount s u
pfcount empty s
pfcount u big5k big100k
pfcount s u words val33
pfcount big100k words

# PFMERGE: sparse into sparse stays sparse; a dense source makes the result dense; two sparse
# inputs that together pass the size limit get promoted during the merge.
pfadd m1 str:item-:0:5
pfmerge m1 u
get m1
pfcount m1
pfmerge m1 s
get m1
pfmerge m1 big5k
get m1
pfcount m1
pfmerge m2 u
get m2
pfmerge m3 big100k
get m3
pfcount m3
pfadd ma "u64:0:$((promoted_at * 2 / 3))"
pfadd mb "u64:1000000:$((1000000 + promoted_at * 2 / 3))"
get ma
get mb
pfmerge ma mb
get ma
pfcount ma
pfcount ma mb

# A dense source with only a few small registers still makes the result dense.
pfadd sm str:item-:0:30
pfadd dd str:item-:100:140
todense dd
get dd
pfcount dd
pfadd dd str:item-:140:150
get dd
pfmerge sm dd
get sm
pfcount sm
pfmerge m5 dd
get m5

echo "wrote $out ($(wc -l <"$out") lines, $(wc -c <"$out") bytes)"
