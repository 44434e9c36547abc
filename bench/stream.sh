#!/usr/bin/env bash
# growth and report over long recordings, in time and peak RSS, against SQLite alone reading the
# same rows (bench/rows_read.c: the statements growth runs, every column of every row touched,
# nothing kept). Recordings of SNAPSHOTS snapshots of a 10,000-region target whose pages flip
# protection at a steady pace, at each churn: about C% of its regions change per tick.
# Median of 3 runs each, alternated; peak RSS is the largest of them.
#   bench/stream.sh [SNAPSHOTS ...]        default 3600; e.g. bench/stream.sh 3600 30000 86400
#   CHURNS="1 5" (default) the churns; REUSE=1 keeps recordings made before (bench/sql.sh's
#   sql-N.db is the 1% recording when it is there: the same recipe)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
build_rusage
cc -O2 -o "$OUT/rows_read" bench/rows_read.c -lsqlite3
V="$PWD/$OUT/build/vmsnap"
CHILD="$PWD/$OUT/build/tests/vm_child"
R="$PWD/$OUT/rusage"

# Pages flipped every 5 ms for each churn (1%: bench/sql.sh's recipe).
flip_pages() { case $1 in 1) echo 24 ;; *) echo $((20 * $1)) ;; esac; }

record() {
  local n=$1 c=$2 db=$3
  [ "${REUSE:-0}" = 1 ] && [ -f "$db" ] && return
  rm -f "$db" "$db"-wal "$db"-shm "$OUT/tin" "$OUT/tout"
  mkfifo "$OUT/tin" "$OUT/tout"
  "$CHILD" <"$OUT/tin" >"$OUT/tout" &
  exec 3>"$OUT/tin" 4<"$OUT/tout"
  echo pid >&3; read -r _ pid <&4
  echo "many 10000" >&3; read -r _ <&4
  echo "flip $(flip_pages "$c") 5" >&3; read -r _ <&4
  "$V" -d "$db" record -p "$pid" --detail maps -i 0 -n "$n" >/dev/null 2>&1
  echo "exit 0" >&3
  exec 3>&- 4<&-
}

# cost CMD...: "PEAK_KB WALL_S" of one run.
cost() { "$R" "$@" 2>&1 >/dev/null | tail -1 | awk '{ print $1, $4 }'; }

printf '| snapshots | churn | spans | file | SQLite reads the rows | vmsnap growth | vmsnap report | growth / SQLite |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for N in "${@:-3600}"; do
  for C in ${CHURNS:-1 5}; do
    DB="$OUT/stream-c$C-$N.db"
    if [ "$C" = 1 ] && [ "${REUSE:-0}" = 1 ] && [ ! -f "$DB" ] && [ -f "$OUT/sql-$N.db" ]; then
      DB="$OUT/sql-$N.db"
    fi
    echo "recording $N snapshots at ${C}% churn ..." >&2
    record "$N" "$C" "$DB"
    ROWS=$("$V" -d "$DB" query "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open) AS n" | tail -1 | tr -d ' ')
    PER=$(( (ROWS - 10000) / N ))
    declare -a ts=() tg=() tr=()
    ps=0 pg=0 pr=0
    for i in 1 2 3; do
      read -r k s < <(cost "$OUT/rows_read" "$DB" 1); ts+=("$s"); [ "$k" -gt "$ps" ] && ps=$k
      read -r k s < <(cost "$V" -d "$DB" growth); tg+=("$s"); [ "$k" -gt "$pg" ] && pg=$k
      read -r k s < <(cost "$V" -d "$DB" report -o "$OUT/stream.html"); tr+=("$s"); [ "$k" -gt "$pr" ] && pr=$k
    done
    m() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
    S=$(m "${ts[@]}") G=$(m "${tg[@]}") P=$(m "${tr[@]}")
    show() { awk -v s="$1" -v k="$2" 'BEGIN { printf "%.2f s, %.1f MiB", s, k / 1024 }'; }
    printf '| %s | %s%% (%s changes/tick) | %s | %s MiB | %s | %s | %s | %sx |\n' "$N" "$C" "$PER" \
      "$ROWS" "$(du -m "$DB" | cut -f1)" "$(show "$S" "$ps")" "$(show "$G" "$pg")" \
      "$(show "$P" "$pr")" "$(ratio "$G" "$S")"
  done
done
