#!/usr/bin/env bash
# The report of a recorded tree of PROCESSES processes (a shell starting PROCESSES/2 forker
# `later` runs, each forking one child): its size (DESIGN: under 2 MiB with 100 processes),
# the time vmsnap takes to write it against `vmsnap growth` of the same tree (the peer: the
# same processes analysed, no page), and how long headless Chromium takes to draw it, by the
# page's own measure, against an empty page's.
#   bench/tree_report.sh [PROCESSES]        default 200
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-200}
build_release
cmake --build "$OUT/build" -j2 --target forker >/dev/null
V="$PWD/$OUT/build/vmsnap"
F="$PWD/$OUT/build/tests/forker"
DB="$OUT/tree.db" HTML="$PWD/$OUT/tree.html" EMPTY="$PWD/$OUT/empty.html"
rm -f "$DB" "$DB"-wal "$DB"-shm
"$V" -d "$DB" record -i 200ms -- sh -c "for i in \$(seq $((N / 2))); do '$F' later & done; wait" \
  >/dev/null 2>&1
TARGETS=$("$V" -d "$DB" query "SELECT count(*) FROM targets" | tail -1 | tr -d ' ')
WRITE_MS=$(median_ms 3 "$V" -d "$DB" report -o "$HTML")
GROWTH_MS=$(median_ms 3 "$V" -d "$DB" growth)
SIZE=$(stat -c %s "$HTML")
empty_page "$EMPTY"
chrome "$HTML" >/dev/null 2>&1
if chrome "$HTML" 2>&1 | grep -q 'data-errors="\|:CONSOLE'; then
  echo "the report did not draw cleanly" >&2
  exit 1
fi
PAGE_MS=$(page_ms "$HTML")
PAGE_EMPTY_MS=$(page_ms "$EMPTY")
echo "tree: $TARGETS processes"
echo "vmsnap report:              ${WRITE_MS} ms (median of 3)"
echo "vmsnap growth (peer):       ${GROWTH_MS} ms (median of 3)"
echo "report / growth:            $(ratio "$WRITE_MS" "$GROWTH_MS")x"
echo "report size:                $SIZE bytes ($(awk -v s="$SIZE" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)"
echo "drawn, the report:          ${PAGE_MS} ms (page's measure, median of 7)"
echo "drawn, an empty page:       ${PAGE_EMPTY_MS} ms"
