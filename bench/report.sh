#!/usr/bin/env bash
# The report at scale: a recording of SNAPSHOTS snapshots of a REGIONS-region target (pages
# flipping protection at a steady pace, and a leak of 64 KiB every 500 ms), then
#   - the report's size (DESIGN: under 2 MiB) and the time vmsnap takes to write it;
#   - the time headless Chromium takes to load and draw it, against the same Chromium loading
#     an empty page in the same run (the peer: what any page costs), and the time the report's
#     own script says it took to draw (data-render-ms).
# Builds a Release tree in bench/out/build.
#   bench/report.sh [SNAPSHOTS] [REGIONS]        default 10000 snapshots of 60000 regions
set -euo pipefail
cd "$(dirname "$0")/.."
SNAPSHOTS=${1:-10000}
REGIONS=${2:-60000}
OUT=bench/out
mkdir -p "$OUT"
cmake -S . -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DVMSNAP_TESTS=ON >/dev/null
cmake --build "$OUT/build" -j2 --target vmsnap vm_child >/dev/null
V="$PWD/$OUT/build/vmsnap"
CHILD="$PWD/$OUT/build/tests/vm_child"
DB="$OUT/report.db"

if [ "${REUSE:-0}" != 1 ] || [ ! -f "$DB" ]; then
  rm -f "$OUT/rin" "$OUT/rout"
  mkfifo "$OUT/rin" "$OUT/rout"
  "$CHILD" <"$OUT/rin" >"$OUT/rout" &
  exec 3>"$OUT/rin" 4<"$OUT/rout"
  trap 'echo "exit 0" >&3 2>/dev/null || true' EXIT
  ask() { echo "$1" >&3; read -r reply <&4; echo "$reply"; }
  PID=$(ask pid | cut -d' ' -f2)
  ask "many $REGIONS" >/dev/null
  rm -f "$DB" "$DB"-wal "$DB"-shm
  ask "flip ${FLIP_PAGES:-10} ${FLIP_MS:-20}" >/dev/null
  ask "leak 65536 500 0" >/dev/null
  t0=$(date +%s%N)
  "$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n "$SNAPSHOTS" >/dev/null 2>&1
  t1=$(date +%s%N)
  ask "flip 0 0" >/dev/null
  ask "leak 0" >/dev/null
  echo "recording: $SNAPSHOTS snapshots of $REGIONS regions in $(((t1 - t0) / 1000000)) ms," \
    "$(($(stat -c %s "$DB") / 1024)) KiB"
fi

ns() { date +%s%N; }
median_ms() {
  local n=$1; shift
  local times=()
  for ((i = 0; i < n; i++)); do
    local a; a=$(ns); "$@" >/dev/null 2>&1; local b; b=$(ns)
    times+=($(((b - a) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((n + 1) / 2))p"
}
HTML="$PWD/$OUT/report.html"
EMPTY="$PWD/$OUT/empty.html"
echo '<!DOCTYPE html><html><head><meta charset="utf-8"><title>empty</title></head><body></body></html>' >"$EMPTY"
SNAPS=$("$V" -d "$DB" query "SELECT count(*) FROM snapshots" | tail -1 | tr -d ' ')
REGS=$("$V" -d "$DB" query "SELECT region_count FROM snapshots ORDER BY id DESC LIMIT 1" | tail -1 | tr -d ' ')
WRITE_MS=$(median_ms 3 "$V" -d "$DB" report -o "$HTML")
SIZE=$(stat -c %s "$HTML")
chrome() { chromium --headless --no-sandbox --disable-gpu --dump-dom "file://$1"; }
chrome "$HTML" >/dev/null 2>&1 # warm the disk cache and Chromium's own files
RENDER_MS=$(median_ms 5 chrome "$HTML")
EMPTY_MS=$(median_ms 5 chrome "$EMPTY")
DRAW_MS=$(chrome "$HTML" 2>/dev/null | grep -o 'data-render-ms="[0-9]*"' | grep -o '[0-9]*')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "database: $SNAPS snapshots, $REGS regions in the last"
echo "vmsnap report:                    ${WRITE_MS} ms (median of 3)"
echo "report size:                      $SIZE bytes ($(awk -v s="$SIZE" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)"
echo "chromium, the report:             ${RENDER_MS} ms (median of 5, load and draw, headless)"
echo "chromium, an empty page (peer):   ${EMPTY_MS} ms (median of 5)"
echo "report / empty page:              $(ratio "$RENDER_MS" "$EMPTY_MS")x; the report's own cost $((RENDER_MS - EMPTY_MS)) ms"
echo "the report's script, drawing:     ${DRAW_MS} ms (data-render-ms)"
