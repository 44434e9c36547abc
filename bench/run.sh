#!/usr/bin/env bash
# Speed and size of vmsnap against peers in the same run (the machine is shared and noisy, so
# only ratios mean anything). Builds a Release tree in bench/out/build.
#   bench/run.sh [REGIONS]        default 60000 regions in the target
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REGIONS=${1:-60000}
build_release
cc -O2 -o "$OUT/view_read" bench/view_read.c -lsqlite3
V="$PWD/$OUT/build/vmsnap"
CHILD="$PWD/$OUT/build/tests/vm_child"

# A target holding REGIONS regions that do not change (vm_child answers on a pipe).
rm -f "$OUT/in" "$OUT/out"
mkfifo "$OUT/in" "$OUT/out"
"$CHILD" <"$OUT/in" >"$OUT/out" &
exec 3>"$OUT/in" 4<"$OUT/out"
trap 'echo "exit 0" >&3 2>/dev/null || true' EXIT
ask() { echo "$1" >&3; read -r reply <&4; echo "$reply"; }
PID=$(ask pid | cut -d' ' -f2)
ask "many $REGIONS" >/dev/null
LINES=$(wc -l </proc/$PID/maps)

# Median of N runs of a command, in microseconds.

DB="$OUT/bench.db"
rm -f "$DB" "$DB"-wal "$DB"-shm

CAT_US=$(median_us 21 cat /proc/$PID/maps)

# First snapshot of the whole address space, stored in a new database.
first_snap() { rm -f "$DB" "$DB"-wal "$DB"-shm; "$V" -d "$DB" snap -p "$PID" --detail maps; }
FIRST_US=$(median_us 5 first_snap)

# Steady ticks: nothing changes. Per tick = (time of N+1 ticks - time of 1 tick) / N, so start-up
# and loading the previous state cancel out.
TICKS=100
ONE_US=$(median_us 5 "$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n 1)
MANY_US=$(median_us 3 "$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n $((TICKS + 1)))
TICK_US=$(((MANY_US - ONE_US) / TICKS))
# The same with --follow: each tick also lists the process table for new children.
FONE_US=$(median_us 5 "$V" -d "$DB" record -p "$PID" --follow --detail maps -i 0 -n 1)
FMANY_US=$(median_us 3 "$V" -d "$DB" record -p "$PID" --follow --detail maps -i 0 -n $((TICKS + 1)))
FOLLOW_TICK_US=$(((FMANY_US - FONE_US) / TICKS))
NPROCS=$(ls -d /proc/[0-9]* | wc -l)

# Database growth per unchanged tick (the file is checkpointed when vmsnap exits).
"$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n 1 >/dev/null 2>&1
SIZE1=$(stat -c %s "$DB")
"$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n 1000 >/dev/null 2>&1
SIZE2=$(stat -c %s "$DB")
GROWTH=$(((SIZE2 - SIZE1) / 1000))

# Steady ticks with about 1% of the regions changing: a thread in the target flips pages'
# protection (each flip merges three regions or splits one) at a fixed pace. cat is measured
# again under the same churn.
ask "flip ${FLIP_PAGES:-14} ${FLIP_MS:-5}" >/dev/null
CHURN_CAT_US=$(median_us 21 cat /proc/$PID/maps)
spans() { "$V" -d "$DB" query "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open) AS n" | tail -1 | tr -d ' '; }
ROWS0=$(spans)
CHURN_ONE_US=$(median_us 5 "$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n 1)
CHURN_MANY_US=$(median_us 3 "$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n $((TICKS + 1)))
ROWS1=$(spans)
ask "flip 0 0" >/dev/null
CHURN_TICK_US=$(((CHURN_MANY_US - CHURN_ONE_US) / TICKS))
# New region rows per tick over all those ticks: the regions that changed.
CHURN_TICKS=$((5 + 3 * (TICKS + 1)))
CHANGED_PER_TICK=$(((ROWS1 - ROWS0) / CHURN_TICKS))

LAST=$("$V" -d "$DB" query "SELECT max(id) AS id FROM snapshots" | tail -1 | tr -d ' ')
VIEW=$("$OUT/view_read" "$DB" "$LAST" 11)

echo "target: $LINES regions (pid $PID); kernel $(uname -r)"
echo "cat /proc/PID/maps:                 ${CAT_US} us (median of 21)"
echo "first snapshot, stored (snap):      ${FIRST_US} us  = $(ratio "$FIRST_US" "$CAT_US")x cat   (target <= 4x)"
echo "steady tick, maps detail, no change: ${TICK_US} us  = $(ratio "$TICK_US" "$CAT_US")x cat   (target <= 1.25x)"
echo "steady tick with --follow:          ${FOLLOW_TICK_US} us  = $(ratio "$FOLLOW_TICK_US" "$CAT_US")x cat   ($NPROCS processes on the machine)"
echo "database growth per unchanged tick: ${GROWTH} bytes (target <= 512)"
echo "steady tick, ~$CHANGED_PER_TICK regions changing: ${CHURN_TICK_US} us  = $(ratio "$CHURN_TICK_US" "$CHURN_CAT_US")x cat (${CHURN_CAT_US} us under the same churn; target <= 1.25x at <= 1%)"
echo "regions view vs plain table:        $VIEW (target ratio <= 2)"

# --- diff of two 100k-region snapshots vs GNU diff on the two maps text dumps ---
DIFF_REGIONS=${DIFF_REGIONS:-100000}
if [ "$(cat /proc/sys/vm/max_map_count)" -lt $((DIFF_REGIONS + 1000)) ]; then
  if [ "$(id -u)" = 0 ]; then
    OLD_MAX=$(cat /proc/sys/vm/max_map_count)
    echo $((DIFF_REGIONS + 10000)) >/proc/sys/vm/max_map_count
    trap 'echo "exit 0" >&3 2>/dev/null || true; echo "exit 0" >&5 2>/dev/null || true; echo '"$OLD_MAX"' >/proc/sys/vm/max_map_count' EXIT
  else
    echo "diff: skipped (vm.max_map_count too low for $DIFF_REGIONS regions; run as root)"
    exit 0
  fi
fi
rm -f "$OUT/in2" "$OUT/out2"
mkfifo "$OUT/in2" "$OUT/out2"
"$CHILD" <"$OUT/in2" >"$OUT/out2" &
exec 5>"$OUT/in2" 6<"$OUT/out2"
ask2() { echo "$1" >&5; read -r reply <&6; echo "$reply"; }
PID2=$(ask2 pid | cut -d' ' -f2)
BASE=$(ask2 "many $DIFF_REGIONS" | cut -d' ' -f2)
DDB="$OUT/diff.db"
rm -f "$DDB" "$DDB"-wal "$DDB"-shm
cat /proc/$PID2/maps >"$OUT/a.maps"
"$V" -d "$DDB" snap -p "$PID2" --detail maps --label a >/dev/null
# About 1% of the regions change: pages flip protection (merging three regions into one).
PAGE=$(getconf PAGESIZE)
for ((k = 2; k < DIFF_REGIONS; k += 100)); do
  echo "protect $((BASE + k * PAGE)) $PAGE rw-" >&5
  read -r _ <&6
done
cat /proc/$PID2/maps >"$OUT/b.maps"
"$V" -d "$DDB" snap -p "$PID2" --detail maps --label b >/dev/null
GNU_US=$(median_us 11 diff "$OUT/a.maps" "$OUT/b.maps")
VDIFF_US=$(median_us 11 "$V" -d "$DDB" diff a b)
VBACK_US=$(median_us 11 "$V" -d "$DDB" diff b a)
# With per-region figures on both sides: what opened, closed or changed its figures (the
# same 1% of the regions flip between c and d, and are touched).
"$V" -d "$DDB" snap -p "$PID2" --detail smaps --label c >/dev/null
for ((k = 2; k < DIFF_REGIONS; k += 100)); do
  echo "protect $((BASE + k * PAGE)) $PAGE r--" >&5
  read -r _ <&6
  echo "touch $((BASE + (k + 1) * PAGE)) $PAGE" >&5
  read -r _ <&6
done
"$V" -d "$DDB" snap -p "$PID2" --detail smaps --label d >/dev/null
VFULL_US=$(median_us 11 "$V" -d "$DDB" diff c d)
# Two targets: both snapshots are read whole.
rm -f "$OUT/in3" "$OUT/out3"
mkfifo "$OUT/in3" "$OUT/out3"
"$CHILD" <"$OUT/in3" >"$OUT/out3" &
exec 7>"$OUT/in3" 8<"$OUT/out3"
echo pid >&7; read -r _ PID3 <&8
echo "many $DIFF_REGIONS" >&7; read -r _ <&8
cat /proc/$PID3/maps >"$OUT/e.maps"
"$V" -d "$DDB" snap -p "$PID3" --detail maps --label e >/dev/null
E_ID=$("$V" -d "$DDB" query "SELECT id FROM snapshots WHERE label = 'e'" | tail -1 | tr -d ' ')
VTWO_US=$(median_us 5 "$V" -d "$DDB" diff b "$E_ID")
GNU_TWO_US=$(median_us 5 diff "$OUT/b.maps" "$OUT/e.maps")
TWO_CHANGES=$({ "$V" -d "$DDB" -j diff b "$E_ID" --summary || true; } | sed 's/.*"changes":\([0-9]*\).*/\1/')
echo "exit 0" >&7
CHANGES=$({ "$V" -d "$DDB" -j diff a b --summary || true; } | sed 's/.*"changes":\([0-9]*\).*/\1/')
echo "diff target: $(wc -l <"$OUT/a.maps") regions, $CHANGES changes"
echo "GNU diff of the two maps dumps:     ${GNU_US} us (median of 11)"
echo "vmsnap diff a b (intervals):        ${VDIFF_US} us  = $(ratio "$VDIFF_US" "$GNU_US")x GNU diff (target < 1x)"
echo "vmsnap diff b a (intervals):        ${VBACK_US} us  = $(ratio "$VBACK_US" "$GNU_US")x GNU diff"
echo "vmsnap diff c d (smaps on both):    ${VFULL_US} us  = $(ratio "$VFULL_US" "$GNU_US")x GNU diff (figures delta)"
echo "vmsnap diff b e (two targets):      ${VTWO_US} us  = $(ratio "$VTWO_US" "$GNU_TWO_US")x GNU diff of their dumps (${GNU_TWO_US} us; two whole reads, $TWO_CHANGES changes)"
