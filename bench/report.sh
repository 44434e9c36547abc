#!/usr/bin/env bash
# The report at scale: a recording of SNAPSHOTS snapshots of a REGIONS-region target (pages
# flipping protection at a steady pace, and a leak of 64 KiB every 500 ms), then
#   - the report's size (DESIGN: under 2 MiB) and the time vmsnap takes to write it;
#   - how long headless Chromium takes to render it: the page's own measure, from the start of
#     navigation until it is drawn and laid out (data-render-ms), against the same measure of a
#     page that holds nothing (the peer, in the same run); and the whole chromium process, which
#     includes starting the browser, for the report and for the empty page.
# REUSE=1 keeps bench/out/report.db from an earlier run.
# Builds a Release tree in bench/out/build.
#   bench/report.sh [SNAPSHOTS] [REGIONS]        default 10000 snapshots of 60000 regions
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SNAPSHOTS=${1:-10000}
REGIONS=${2:-60000}
build_release
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

HTML="$PWD/$OUT/report.html"
EMPTY="$PWD/$OUT/empty.html"
empty_page "$EMPTY"
SNAPS=$("$V" -d "$DB" query "SELECT count(*) FROM snapshots" | tail -1 | tr -d ' ')
REGS=$("$V" -d "$DB" query "SELECT region_count FROM snapshots ORDER BY id DESC LIMIT 1" | tail -1 | tr -d ' ')
WRITE_MS=$(median_ms 3 "$V" -d "$DB" report -o "$HTML")
SIZE=$(stat -c %s "$HTML")
chrome "$HTML" >/dev/null 2>&1 # warm the disk cache and Chromium's own files
PAGE_MS=$(page_ms "$HTML")
PAGE_EMPTY_MS=$(page_ms "$EMPTY")
if chrome "$HTML" 2>&1 | grep -q 'data-errors="\|:CONSOLE'; then
  echo "the report did not draw cleanly" >&2
  exit 1
fi
PROC_MS=$(median_ms 5 chrome "$HTML")
PROC_EMPTY_MS=$(median_ms 5 chrome "$EMPTY")
echo "database: $SNAPS snapshots, $REGS regions in the last"
echo "vmsnap report:                          ${WRITE_MS} ms (median of 3)"
echo "report size:                            $SIZE bytes ($(awk -v s="$SIZE" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)"
echo "rendered, the report (page's measure):  ${PAGE_MS} ms (median of 7)"
echo "rendered, an empty page (peer):         ${PAGE_EMPTY_MS} ms (median of 7)"
echo "chromium process, the report:           ${PROC_MS} ms (median of 5, browser start included)"
echo "chromium process, the empty page:       ${PROC_EMPTY_MS} ms (median of 5)"
echo "process, report / empty page:           $(ratio "$PROC_MS" "$PROC_EMPTY_MS")x"
