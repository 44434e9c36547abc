#!/usr/bin/env bash
# Speed and size of vmsnap against a peer and against the floor, in the same run: the machine
# is shared and noisy, so only ratios mean anything. The floor is bench/floor.c, a program that
# only reads the same files vmsnap reads (the target's maps and stat; the dumps a diff compares).
# Each figure is ROUNDS rounds in which vmsnap, its peer and the floor run one after another
# (so drift in the machine's load falls on all three): min/median/max, and ratios of medians.
#   bench/run.sh [REGIONS]        default 60000 regions in the target; ROUNDS=7, REC_S=10
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REGIONS=${1:-60000}
ROUNDS=${ROUNDS:-7}
REC_S=${REC_S:-10}
build_release
build_floor
build_rusage
cc -O2 -o "$OUT/view_read" bench/view_read.c -lsqlite3
V="$PWD/$OUT/build/vmsnap"
CHILD="$PWD/$OUT/build/tests/vm_child"
F="$PWD/$OUT/floor"
RU="$PWD/$OUT/rusage"

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
MAPS=/proc/$PID/maps STAT=/proc/$PID/stat
DB="$OUT/bench.db"
fresh() { rm -f "$DB" "$DB"-wal "$DB"-shm; }

# One line: what, vmsnap's min/median/max, and each peer's median with vmsnap's ratio to it.
# line WHAT VMSNAP_STATS [PEER_NAME PEER_STATS]...
line() {
  local what=$1 v=$2; shift 2
  local out; out=$(printf '%-40s %s' "$what" "$(mmm "$v")")
  while [ $# -gt 1 ]; do
    out="$out | $1 $(mmm "$2") = $(ratio "$(med "$v")" "$(med "$2")")x"
    shift 2
  done
  echo "$out"
}

# A tick, per tick: (time of TICKS+1 ticks - time of 1) / TICKS, for vmsnap and the floor alike
# (each floor round reads maps and stat twice, as a tick reads maps and checks the target
# before and after), with cat of the maps in between. Prints "vmsnap floor cat" in us.
TICKS=100
tick_round() {
  local v1 vn f1 fn c
  v1=$(time_us "$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n 1)
  f1=$(time_us "$F" -n 1 "$MAPS" "$STAT" "$STAT")
  c=$(time_us cat "$MAPS")
  vn=$(time_us "$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n $((TICKS + 1)))
  fn=$(time_us "$F" -n $((TICKS + 1)) "$MAPS" "$STAT" "$STAT")
  echo $(((vn - v1) / TICKS)) $(((fn - f1) / TICKS)) "$c"
}
# ticks LABEL: ROUNDS tick rounds, as one line.
ticks() {
  local v=() f=() c=()
  for ((r = 0; r < ROUNDS; r++)); do
    read -r a b d < <(tick_round)
    v+=("$a") f+=("$b") c+=("$d")
  done
  line "$1" "$(stats "${v[@]}")" cat "$(stats "${c[@]}")" floor "$(stats "${f[@]}")"
}

# The first snapshot: a new database, the whole address space written (process start, walk,
# REGIONS rows, commit, checkpoint on close); the floor reads maps and stat twice once.
first=() fcat=() ffloor=()
for ((r = 0; r < ROUNDS; r++)); do
  fresh
  first+=("$(time_us "$V" -d "$DB" snap -p "$PID" --detail maps)")
  fcat+=("$(time_us cat "$MAPS")")
  ffloor+=("$(time_us "$F" -n 1 "$MAPS" "$STAT" "$STAT")")
done

echo "target: $LINES regions (pid $PID); kernel $(uname -r); $ROUNDS rounds, min/median/max"
line "first snapshot (snap, new database)" "$(stats "${first[@]}")" cat "$(stats "${fcat[@]}")" \
  floor "$(stats "${ffloor[@]}")"
ticks "unchanged tick (record --detail maps)"

# Database growth per unchanged tick (the file is checkpointed when vmsnap exits).
"$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n 1 >/dev/null 2>&1
SIZE1=$(stat -c %s "$DB")
"$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n 1000 >/dev/null 2>&1
SIZE2=$(stat -c %s "$DB")
echo "database growth per unchanged tick:      $(((SIZE2 - SIZE1) / 1000)) bytes"

# Ticks with a share of the regions changing: a thread in the target flips pages' protection
# (each flip merges three regions or splits one) at a fixed pace; cat and the floor read under
# the same churn.
spans() { "$V" -d "$DB" query "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open) AS n" | tail -1 | tr -d ' '; }
ask "flip ${FLIP_PAGES:-14} ${FLIP_MS:-5}" >/dev/null
ROWS0=$(spans) SNAPS0=$("$V" -d "$DB" query "SELECT count(*) AS n FROM snapshots" | tail -1 | tr -d ' ')
CHURN=$(ticks "changing tick (record --detail maps)")
ROWS1=$(spans) SNAPS1=$("$V" -d "$DB" query "SELECT count(*) AS n FROM snapshots" | tail -1 | tr -d ' ')
ask "flip 0 0" >/dev/null
CHANGED=$(awk -v r=$((ROWS1 - ROWS0)) -v s=$((SNAPS1 - SNAPS0)) -v n="$LINES" \
  'BEGIN { printf "%.0f regions (%.2f%%)", r / s, r / s / n * 100 }')
echo "$CHURN"
echo "  (each changing tick: ~$CHANGED new region rows)"

LAST=$("$V" -d "$DB" query "SELECT max(id) AS id FROM snapshots" | tail -1 | tr -d ' ')
echo "regions view vs plain table:             $("$OUT/view_read" "$DB" "$LAST" 11)"

# record's CPU at the defaults (1 s, rollup) per second of recording, without its first
# snapshot, against the floor reading what a tick reads (maps, smaps_rollup, stat twice) once a
# second.
cpu() { "$RU" "$@" 2>&1 >/dev/null | tail -1 | awk '{ printf "%.4f", $2 + $3 }'; }
rec=() flo=()
for ((r = 0; r < 3; r++)); do
  fresh
  one=$(cpu "$V" -d "$DB" record -p "$PID" -n 1)
  fresh
  all=$(cpu "$V" -d "$DB" record -p "$PID" -t "${REC_S}s")
  rec+=("$(awk -v a="$all" -v o="$one" -v s="$REC_S" 'BEGIN { printf "%d", (a - o) / s * 1e6 }')")
  fl=$(cpu "$F" -i 1000 -n "$REC_S" "$MAPS" "/proc/$PID/smaps_rollup" "$STAT" "$STAT")
  flo+=("$(awk -v a="$fl" -v s="$REC_S" 'BEGIN { printf "%d", a / s * 1e6 }')")
done
REC=$(stats "${rec[@]}") FLO=$(stats "${flo[@]}")
echo "record CPU per second (defaults):        $(echo "$REC" | awk '{ printf "%.2f/%.2f/%.2f%%", $1 / 1e4, $2 / 1e4, $3 / 1e4 }') of a core | floor $(echo "$FLO" | awk '{ printf "%.2f%%", $2 / 1e4 }') = $(ratio "$(med "$REC")" "$(med "$FLO")")x"

# --- diffs of two 100k-region snapshots vs GNU diff of the two maps dumps ---
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
dump() { cat /proc/$PID2/maps >"$OUT/$1.maps"; "$V" -d "$DDB" snap -p "$PID2" --detail "$2" --label "$1" >/dev/null; }
dump a maps
# About 1% of the regions change: pages flip protection (merging three regions into one).
PAGE=$(getconf PAGESIZE)
for ((k = 2; k < DIFF_REGIONS; k += 100)); do
  echo "protect $((BASE + k * PAGE)) $PAGE rw-" >&5
  read -r _ <&6
done
dump b maps
# With per-region figures on both sides: the same 1% flip between c and d, and are touched.
dump c smaps
for ((k = 2; k < DIFF_REGIONS; k += 100)); do
  echo "protect $((BASE + k * PAGE)) $PAGE r--" >&5
  read -r _ <&6
  echo "touch $((BASE + (k + 1) * PAGE)) $PAGE" >&5
  read -r _ <&6
done
dump d smaps
# A second target: a diff of two targets reads both snapshots whole.
rm -f "$OUT/in3" "$OUT/out3"
mkfifo "$OUT/in3" "$OUT/out3"
"$CHILD" <"$OUT/in3" >"$OUT/out3" &
exec 7>"$OUT/in3" 8<"$OUT/out3"
echo pid >&7; read -r _ PID3 <&8
echo "many $DIFF_REGIONS" >&7; read -r _ <&8
cat /proc/$PID3/maps >"$OUT/e.maps"
"$V" -d "$DDB" snap -p "$PID3" --detail maps --label e >/dev/null
echo "exit 0" >&7
E_ID=$("$V" -d "$DDB" query "SELECT id FROM snapshots WHERE label = 'e'" | tail -1 | tr -d ' ')
changes() { { "$V" -d "$DDB" -j diff "$1" "$2" --summary || true; } | sed 's/.*"changes":\([0-9]*\).*/\1/'; }

# diff_rounds LABEL A B DUMP_A DUMP_B: vmsnap diff A B, GNU diff of the dumps and the floor
# (reading both dumps) alternated, as one line.
diff_rounds() {
  local v=() g=() f=()
  for ((r = 0; r < ROUNDS; r++)); do
    v+=("$(time_us "$V" -d "$DDB" diff "$2" "$3")")
    g+=("$(time_us diff "$OUT/$4.maps" "$OUT/$5.maps")")
    f+=("$(time_us "$F" "$OUT/$4.maps" "$OUT/$5.maps")")
  done
  line "$1" "$(stats "${v[@]}")" "GNU diff" "$(stats "${g[@]}")" floor "$(stats "${f[@]}")"
}
echo "diff target: $(wc -l <"$OUT/a.maps") regions; a to b: $(changes a b) changes, c to d: $(changes c d), b to e: $(changes b "$E_ID")"
diff_rounds "diff a b (one target, maps)" a b a b
diff_rounds "diff b a" b a b a
diff_rounds "diff c d (smaps on both sides)" c d c d
diff_rounds "diff b e (two targets)" b "$E_ID" b e
