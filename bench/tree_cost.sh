#!/usr/bin/env bash
# What following a process tree costs in its steady state: `record -p PARENT --follow -i 1s`
# over a parent and CHILDREN children of ~200 regions each, changing slowly (bench/tree_target.c:
# one region born and one ended per child every 10 s). Once every child is followed and has a
# snapshot, a window of SECONDS is measured:
#   - the recorder's CPU (its /proc/PID/schedstat run time), against the floor: bench/floor.c
#     reading, once a second, each process's maps, smaps_rollup and stat (what recording at the
#     default detail must read) for as many rounds, over the same tree;
#   - its peak RSS (VmHWM), and the KB per followed process between two sizes of tree;
#   - the bytes it wrote (/proc/PID/io: wchar, what it handed write(2); write_bytes, what
#     reached the disk), against what the database grew (its pages in use, read through SQLite).
# Prints one line per size of tree. WARM=S waits S seconds, not 5, before the window: the
# writes of a long recording show only after minutes (each process's index leaf of snapshots).
#   [WARM=S] bench/tree_cost.sh [SECONDS] [CHILDREN...]   default 20 s over 50, 200 and 500
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
W=${1:-20}
WARM=${WARM:-5}
shift || true
if [ $# -gt 0 ]; then SIZES=("$@"); else SIZES=(50 200 500); fi
build_release
build_floor
cc -O2 -o "$OUT/tree_target" bench/tree_target.c
V="$PWD/$OUT/build/vmsnap"
DB="$OUT/tree-cost.db"

# run_ns PID: the run time of PID's main thread, in ns (vmsnap records on one thread).
run_ns() { cut -d' ' -f1 "/proc/$1/schedstat"; }
# io PID FIELD: a counter of /proc/PID/io.
io() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/io"; }
# used DB: the bytes of the database's pages in use, WAL included.
used() {
  sqlite3 "file:$1?mode=ro" "SELECT ((SELECT page_count FROM pragma_page_count) -
    (SELECT freelist_count FROM pragma_freelist_count)) *
    (SELECT page_size FROM pragma_page_size)"
}
mb() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.2f", b / s / 1e6 }'; }

base_hwm=
for n in "${SIZES[@]}"; do
  rm -f "$DB" "$DB"-wal "$DB"-shm
  coproc TREE { exec "$OUT/tree_target" "$n" 200 $((2 * W + WARM + 60)); }
  tree=$TREE_PID
  read -r _ <&"${TREE[0]}" # "ready": every child holds its regions
  "$V" -d "$DB" record -p "$tree" --follow -i 1s >/dev/null 2>"$OUT/tree-cost.err" &
  rec=$!
  # Steady: every process followed has a snapshot, and WARM more ticks have gone by.
  for ((i = 0; i < 120; i++)); do
    sleep 0.5
    got=$(sqlite3 "file:$DB?mode=ro" "SELECT count(DISTINCT target_id) FROM snapshots" 2>/dev/null || echo 0)
    [ "${got:-0}" -ge $((n + 1)) ] && break
  done
  sleep "$WARM"
  c0=$(run_ns "$rec"); w0=$(io "$rec" wchar); b0=$(io "$rec" write_bytes); u0=$(used "$DB")
  s0=$(sqlite3 "file:$DB?mode=ro" "SELECT count(*) FROM snapshots")
  sleep "$W"
  c1=$(run_ns "$rec"); w1=$(io "$rec" wchar); b1=$(io "$rec" write_bytes); u1=$(used "$DB")
  s1=$(sqlite3 "file:$DB?mode=ro" "SELECT count(*) FROM snapshots")
  hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$rec/status")
  kill -INT "$rec"; wait "$rec" || true
  # The floor over the same tree, still alive, for as many rounds.
  files=()
  for p in "$tree" $(pgrep -P "$tree"); do
    files+=("/proc/$p/maps" "/proc/$p/smaps_rollup" "/proc/$p/stat")
  done
  read -r _ fu fs _ _ < <("$OUT/rusage" "$OUT/floor" -n "$W" -i 1000 "${files[@]}" 2>&1 >/dev/null | tail -1)
  kill "$tree" $(pgrep -P "$tree") 2>/dev/null || true
  wait "$tree" 2>/dev/null || true
  cpu=$(awk -v a="$c0" -v b="$c1" -v w="$W" 'BEGIN { printf "%.2f", (b - a) / 1e9 / w * 100 }')
  floor=$(awk -v u="$fu" -v s="$fs" -v w="$W" 'BEGIN { printf "%.2f", (u + s) / w * 100 }')
  grew=$((u1 - u0))
  per=""
  if [ -n "$base_hwm" ]; then
    per="; $(awk -v a="$base_hwm" -v b="$hwm" -v d=$((n - base_n)) 'BEGIN { printf "%.0f", (b - a) / d }') KB per process more than at $base_n"
  else
    base_hwm=$hwm; base_n=$n
  fi
  echo "$n children: $((s1 - s0)) snapshots in ${W} s; CPU $cpu% of a core, floor $floor%" \
    "($(ratio "$cpu" "$floor")x); peak RSS $((hwm / 1024)) MiB$per; wrote $(mb $((w1 - w0)) "$W") MB/s" \
    "($(ratio $((w1 - w0)) "$grew" 1)x the database's growth of $(mb "$grew" "$W") MB/s)," \
    "$(mb $((b1 - b0)) "$W") MB/s to disk ($(ratio $((b1 - b0)) "$grew" 1)x)"
done
