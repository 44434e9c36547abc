#!/usr/bin/env bash
# What recording costs the target: bench/churner.c maps, write-protects and unmaps 64 KiB as
# fast as it can while holding REGIONS other mappings; its rounds per second unobserved, then
# while `vmsnap record -p` watches it at the defaults (1 s, rollup), with --detail maps (1 s),
# at -i 100ms, and at --detail smaps (1 s), each for SECONDS. Slowdown = 1 - observed / unobserved (median of RUNS).
#   bench/target_cost.sh [REGIONS] [SECONDS] [RUNS]      default 10000 5 3
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REGIONS=${1:-10000}
SECONDS_EACH=${2:-5}
RUNS=${3:-3}
build_release
cc -O2 -o "$OUT/churner" bench/churner.c
V="$PWD/$OUT/build/vmsnap"
DB="$OUT/cost.db"

# One run: the churner's rounds per second, observed by "$@" (nothing when empty).
one() {
  rm -f "$DB" "$DB"-wal "$DB"-shm
  coproc CH { exec "$OUT/churner" "$REGIONS" "$SECONDS_EACH"; }
  local ready pid rate rec=""
  read -r ready pid <&"${CH[0]}"
  if [ $# -gt 0 ]; then
    "$V" -d "$DB" record -p "$pid" -t "$((SECONDS_EACH + 1))s" "$@" >/dev/null 2>&1 &
    rec=$!
  fi
  read -r rate <&"${CH[0]}"
  wait "$CH_PID" 2>/dev/null || true
  [ -n "$rec" ] && wait "$rec" 2>/dev/null || true
  echo "$rate"
}
median() { sort -n | sed -n "$(((RUNS + 1) / 2))p"; }
runs() { for ((i = 0; i < RUNS; i++)); do one "$@"; done | median; }

BASE=$(runs)
DEF=$(runs -i 1s)
MAPS=$(runs -i 1s --detail maps)
FAST=$(runs -i 100ms)
SMAPS=$(runs --detail smaps)
slow() { awk -v o="$1" -v b="$BASE" 'BEGIN { printf "%.1f%%", (1 - o / b) * 100 }'; }
echo "target: $REGIONS regions + a 64 KiB map/protect/unmap loop; $SECONDS_EACH s per run, median of $RUNS"
echo "unobserved:                 $BASE rounds/s"
echo "record (defaults: 1s, rollup): $DEF rounds/s  slowdown $(slow "$DEF")   (goal <= 1%)"
echo "record --detail maps (1s):  $MAPS rounds/s  slowdown $(slow "$MAPS")   (no smaps_rollup)"
echo "record -i 100ms:            $FAST rounds/s  slowdown $(slow "$FAST")"
echo "record --detail smaps (1s): $SMAPS rounds/s  slowdown $(slow "$SMAPS")"
