#!/usr/bin/env bash
# What `vmsnap record --stacks` costs a real program (issue 23): wall time of each program run
# untraced, under `strace -f -e trace=memory -o /dev/null` (the peer), and under
# `vmsnap record --stacks` (1 s snapshots, the default detail), median of 3 runs each; the
# calls recorded and the database's growth per call.
#   a multi-threaded program (bench/trace_threads.c: 4 threads allocating blocks of many sizes),
#   python3 running a script that allocates (lists, dicts and bytearrays),
#   a program with 60,000 regions mapping and unmapping (bench/trace_regions.c).
#   bench/stacks_slowdown.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
command -v strace >/dev/null || { echo "stacks_slowdown: strace is needed" >&2; exit 2; }
build_release
V="$OUT/build/vmsnap"
cc -O2 -pthread -o "$OUT/trace_threads" bench/trace_threads.c
cc -O2 -o "$OUT/trace_regions" bench/trace_regions.c
cat >"$OUT/alloc.py" <<'PY'
import random
random.seed(1)
kept = []
for i in range(300000):
    d = {"i": i, "s": "x" * (i % 100), "l": list(range(i % 50))}
    if i % 100 == 0:
        d["b"] = bytearray(random.randrange(100000, 2000000))
    kept.append(d)
    if len(kept) > 20000:
        kept = kept[10000:]
PY
DB="$OUT/stacks.db"
rec() { rm -f "$DB" "$DB-wal" "$DB-shm"; "$V" -d "$DB" record --stacks -- "$@"; }
row() {
  local name=$1; shift
  local bare peer ours
  bare=$(median_us 3 "$@")
  peer=$(median_us 3 strace -f -e trace=memory -o /dev/null "$@")
  ours=$(median_us 3 rec "$@")
  rec "$@" >/dev/null 2>&1 || true
  local calls bytes
  calls=$("$V" -d "$DB" query "SELECT count(*) FROM events" | tail -1 | tr -d ' ')
  # What the calls take in the file: the events, their index and the stacks (dbstat).
  bytes=$(python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT sum(pgsize) FROM dbstat WHERE name IN (\x27events\x27, \x27events_by_target\x27, \x27stacks\x27, \x27stack_frames\x27, \x27sqlite_autoindex_stacks_1\x27)").fetchone()[0])' "$DB")
  echo "$name: untraced $(ratio "$bare" 1000 0) ms; strace $(ratio "$peer" 1000 0) ms" \
    "($(ratio "$peer" "$bare")x); vmsnap record --stacks $(ratio "$ours" 1000 0) ms" \
    "($(ratio "$ours" "$bare")x untraced, $(ratio "$ours" "$peer")x strace); $calls calls," \
    "calls and stacks $(ratio "$bytes" 1024 0) KiB of the database, $(ratio "$bytes" "$calls" 0) bytes per call"
}
row "4 threads allocating" "$OUT/trace_threads" 4 400000
row "python3 allocating" /usr/bin/python3 "$OUT/alloc.py"
row "60,000 regions, 20,000 mmap+munmap pairs" "$OUT/trace_regions" 60000 20000
