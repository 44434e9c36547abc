#!/usr/bin/env bash
# growth over a long recording: SNAPSHOTS snapshots of a REGIONS-region target with about 1% of
# its regions changing per tick, against reading the same rows through the regions view (the
# plain-SQL answer: committed bytes per snapshot and category). Builds a Release tree in
# bench/out/build.
#   bench/growth.sh [SNAPSHOTS] [REGIONS]        default 3600 snapshots of 10000 regions
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SNAPSHOTS=${1:-3600}
REGIONS=${2:-10000}
build_release
V="$PWD/$OUT/build/vmsnap"
CHILD="$PWD/$OUT/build/tests/vm_child"

rm -f "$OUT/gin" "$OUT/gout"
mkfifo "$OUT/gin" "$OUT/gout"
"$CHILD" <"$OUT/gin" >"$OUT/gout" &
exec 3>"$OUT/gin" 4<"$OUT/gout"
trap 'echo "exit 0" >&3 2>/dev/null || true' EXIT
ask() { echo "$1" >&3; read -r reply <&4; echo "$reply"; }
PID=$(ask pid | cut -d' ' -f2)
ask "many $REGIONS" >/dev/null
DB="$OUT/growth.db"
rm -f "$DB" "$DB"-wal "$DB"-shm
# About 1% of the regions change per tick: pages flip protection at a steady pace.
ask "flip ${FLIP_PAGES:-70} ${FLIP_MS:-5}" >/dev/null
t0=$(date +%s%N)
"$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n "$SNAPSHOTS" >/dev/null 2>&1
t1=$(date +%s%N)
ask "flip 0 0" >/dev/null
ROWS=$("$V" -d "$DB" query "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open)" | tail -1 | tr -d ' ')
SIZE=$(stat -c %s "$DB")

GROWTH_MS=$(median_ms 5 "$V" -d "$DB" growth)
VIEW_SQL="SELECT snapshot_id, category, sum(CASE WHEN substr(perms, 1, 3) = '---' THEN 0 ELSE size END) FROM regions GROUP BY 1, 2"
VIEW_MS=$(median_ms 1 "$V" -d "$DB" query "$VIEW_SQL")
TOTALS_MS=$(median_ms 5 "$V" -d "$DB" query "SELECT snapshot_id, category, committed FROM category_totals")
echo "recording: $SNAPSHOTS snapshots of $REGIONS regions in $(((t1 - t0) / 1000000)) ms; $ROWS region rows ($(((ROWS - REGIONS) / SNAPSHOTS)) changes per tick), $((SIZE / 1024)) KiB"
echo "vmsnap growth:                        ${GROWTH_MS} ms (median of 5)"
echo "the same rows through the regions view: ${VIEW_MS} ms (one run)"
echo "growth / view:                        $(ratio "$GROWTH_MS" "$VIEW_MS" 3)x"
echo "category_totals, every snapshot:      ${TOTALS_MS} ms (median of 5)"
