#!/usr/bin/env bash
# Issue 11's goals in one table: speed as ratios to a peer measured in the same run (cat of the
# maps, GNU diff of the dumps, a new database), peak memory, record's CPU and the target's cost,
# each beside its goal. Runs bench/run.sh and bench/target_cost.sh for the ratios they measure.
#   bench/limits.sh [REGIONS]        default 60000 (run as root: run.sh raises vm.max_map_count)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REGIONS=${1:-60000}
build_release
build_rusage
V="$PWD/$OUT/build/vmsnap"
CHILD="$PWD/$OUT/build/tests/vm_child"
RU="$PWD/$OUT/rusage"

echo "bench/run.sh $REGIONS ..." >&2
bench/run.sh "$REGIONS" >"$OUT/limits.run" 2>&1
echo "bench/target_cost.sh $REGIONS 5 3 ..." >&2
bench/target_cost.sh "$REGIONS" 5 3 >"$OUT/limits.cost" 2>&1
# The ratio (such as 4.88x) after the first "= " on run.sh's line holding $1.
ratio_of() { grep -F "$1" "$OUT/limits.run" | sed 's/[^=]*= \([0-9.]*x\).*/\1/' | head -1; }
slow_of() { grep -F "$1" "$OUT/limits.cost" | sed 's/.*slowdown \([0-9.]*%\).*/\1/'; }

# A target of REGIONS regions for the memory and CPU figures.
rm -f "$OUT/lin" "$OUT/lout"
mkfifo "$OUT/lin" "$OUT/lout"
"$CHILD" <"$OUT/lin" >"$OUT/lout" &
exec 3>"$OUT/lin" 4<"$OUT/lout"
trap 'echo "exit 0" >&3 2>/dev/null || true' EXIT
ask() { echo "$1" >&3; read -r reply <&4; echo "$reply"; }
PID=$(ask pid | cut -d' ' -f2)
ask "many $REGIONS" >/dev/null
DB="$OUT/limits.db"
fresh() { rm -f "$DB" "$DB"-wal "$DB"-shm; }
# Peak RSS in KiB, and CPU seconds (user + sys), of a command.
peak() { "$RU" "$@" 2>&1 >/dev/null | tail -1 | cut -d' ' -f1; }
cpu() { "$RU" "$@" 2>&1 >/dev/null | tail -1 | awk '{ printf "%.3f", $2 + $3 }'; }

echo "memory and CPU ..." >&2
CAT_KB=$(peak cat /proc/$PID/maps)
PMAP_KB=$(peak pmap -X $PID)
fresh
SNAP_MAPS_KB=$(peak "$V" -d "$DB" snap -p "$PID" --detail maps)
fresh
SNAP_SMAPS_KB=$(peak "$V" -d "$DB" snap -p "$PID")
fresh
REC_KB=$(peak "$V" -d "$DB" record -p "$PID" -i 0 -n 10)
REC_AGAIN_KB=$(peak "$V" -d "$DB" record -p "$PID" -i 0 -n 10)

# A snap into a database that already holds the target, against one into a new database,
# alternately.
new_us=() old_us=()
fresh
"$V" -d "$OUT/limits-old.db" snap -p "$PID" --detail maps >/dev/null
for ((i = 0; i < 7; i++)); do
  t0=$(ns); fresh; "$V" -d "$DB" snap -p "$PID" --detail maps >/dev/null; t1=$(ns)
  "$V" -d "$OUT/limits-old.db" snap -p "$PID" --detail maps >/dev/null; t2=$(ns)
  new_us+=($(((t1 - t0) / 1000))) old_us+=($(((t2 - t1) / 1000)))
done
med() { printf '%s\n' "$@" | sort -n | sed -n 4p; }
rm -f "$OUT/limits-old.db"*
NEW_US=$(med "${new_us[@]}") OLD_US=$(med "${old_us[@]}")

# record's CPU at the defaults (1 s, rollup) over 20 ticks, without its first snapshot.
fresh
FIRST_CPU=$(cpu "$V" -d "$DB" record -p "$PID" -n 1)
fresh
ALL_CPU=$(cpu "$V" -d "$DB" record -p "$PID" -t 20s)
REC_CPU=$(awk -v a="$ALL_CPU" -v f="$FIRST_CPU" 'BEGIN { printf "%.1f%%", (a - f) / 20 * 100 }')
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

cat <<EOF
$(head -1 "$OUT/limits.run"); $(head -2 "$OUT/limits.run" | tail -1 | tr -s ' ')

| what | measured | goal |
|------|----------|------|
| first snapshot vs cat | $(ratio_of "first snapshot") | <= 3x |
| snap into a database holding the target vs a new one | $(ratio "$OLD_US" "$NEW_US")x ($((OLD_US / 1000)) / $((NEW_US / 1000)) ms) | <= 1.0x |
| tick with ~1% changing vs cat under the same churn | $(ratio_of "changing tick") | <= 1.0x |
| unchanged tick vs cat | $(ratio_of "unchanged tick") | keep (0.54-0.86x) |
| peak RSS, snap --detail maps (cat $(mib "$CAT_KB"), pmap -X $(mib "$PMAP_KB")) | $(mib "$SNAP_MAPS_KB") | <= 12 MiB |
| peak RSS, snap (smaps) | $(mib "$SNAP_SMAPS_KB") | <= 16 MiB |
| peak RSS, record (defaults), new database / one holding the target | $(mib "$REC_KB") / $(mib "$REC_AGAIN_KB") | <= 16 MiB |
| diff, smaps on both sides vs GNU diff of the dumps | $(ratio_of "smaps on both sides") | <= 1.0x |
| diff, two targets vs GNU diff of their dumps | $(ratio_of "two targets") | <= 1.0x |
| diff, intervals vs GNU diff | $(ratio_of "diff a b") | (0.5x) |
| record CPU at the defaults, per second of recording | $REC_CPU of a core | <= 1% |
| target's slowdown, record at the defaults | $(slow_of "defaults") | <= 1% |
| target's slowdown, --detail maps / -i 100ms / --detail smaps | $(slow_of "detail maps") / $(slow_of "100ms") / $(slow_of "detail smaps") | (stated) |
EOF
