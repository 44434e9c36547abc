#!/usr/bin/env bash
# Every query of the README's SQL section ("Queries a leak hunter runs", taken from README.md
# itself) timed on a recording of SNAPSHOTS snapshots of a 10,000-region target with ~1% of its
# regions changing per tick, through `vmsnap query` and, where installed, the sqlite3 shell.
# A query that names one snapshot by a subquery is also run with that snapshot's literal id (its
# floor: the same rows, found by the id itself). Median of 3 each, alternated.
#   bench/sql.sh [SNAPSHOTS ...]        default 3600; e.g. bench/sql.sh 3600 30000 86400
#   REUSE=1 keeps a recording of that length made before; TIMEOUT=60s bounds each query
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
V="$PWD/$OUT/build/vmsnap"
CHILD="$PWD/$OUT/build/tests/vm_child"
TIMEOUT=${TIMEOUT:-60s}
SHELL3=$(command -v sqlite3 || true)

# The README's queries, one per file, in order.
rm -rf "$OUT/sql" && mkdir -p "$OUT/sql"
awk '/^### Queries a leak hunter runs/ { on = 1 } /^## / && on && !/Queries/ { on = 0 }
     on && /^```sql/ { q++; f = sprintf("'"$OUT"'/sql/%02d.sql", q); inq = 1; next }
     inq && /^```/ { inq = 0; next }
     inq { print > f }' README.md
# A file with two statements runs them one by one.
split_statements() { awk -v RS=';' 'NF { gsub(/^[ \n]+/, ""); print $0 ";" > (FILENAME "." NR) }' "$1"; }
for f in "$OUT"/sql/*.sql; do
  if [ "$(grep -c ';' "$f")" -gt 1 ]; then split_statements "$f"; rm "$f"; fi
done

record() {
  local n=$1 db=$2
  [ "${REUSE:-0}" = 1 ] && [ -f "$db" ] && return
  rm -f "$db" "$db"-wal "$db"-shm "$OUT/sin" "$OUT/sout"
  mkfifo "$OUT/sin" "$OUT/sout"
  "$CHILD" <"$OUT/sin" >"$OUT/sout" &
  exec 3>"$OUT/sin" 4<"$OUT/sout"
  echo pid >&3; read -r _ pid <&4
  echo "many 10000" >&3; read -r _ <&4
  echo "flip ${FLIP_PAGES:-24} 5" >&3; read -r _ <&4
  "$V" -d "$db" record -p "$pid" --detail maps -i 0 -n "$n" >/dev/null 2>&1
  echo "exit 0" >&3
  exec 3>&- 4<&-
}

# time_query DB SQL: microseconds of one run of SQL through vmsnap query (or "timeout").
vq() { "$V" -d "$1" query --timeout "$TIMEOUT" --max-rows 0 -j "$2"; }
sq() { "$SHELL3" -readonly "$1" "$2"; }
med3() {
  local runner=$1 db=$2 sql=$3 a=() t0 t1
  for i in 1 2 3; do
    t0=$(ns)
    if ! "$runner" "$db" "$sql" >/dev/null 2>&1; then echo "timeout"; return; fi
    t1=$(ns)
    a+=($(((t1 - t0) / 1000)))
  done
  printf '%s\n' "${a[@]}" | sort -n | sed -n 2p
}
ms() { [ "$1" = timeout ] && echo "> $TIMEOUT" || awk -v u="$1" 'BEGIN { printf "%.1f ms", u / 1000 }'; }

for N in "${@:-3600}"; do
  DB="$OUT/sql-$N.db"
  echo "recording $N snapshots ..." >&2
  record "$N" "$DB"
  LAST=$("$V" -d "$DB" query "SELECT max(id) AS id FROM snapshots" | tail -1 | tr -d ' ')
  FIRST=$("$V" -d "$DB" query "SELECT min(id) AS id FROM snapshots WHERE target_id = 1" | tail -1 | tr -d ' ')
  ROWS=$("$V" -d "$DB" query "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open) AS n" | tail -1 | tr -d ' ')
  echo "## $N snapshots of a 10,000-region target: $(du -m "$DB" | cut -f1) MiB, $ROWS spans"
  printf '| query | vmsnap query | sqlite3 | with a literal id (floor) |\n|---|---|---|---|\n'
  for f in "$OUT"/sql/*; do
    sql=$(cat "$f")
    name=$(head -c 60 <<<"$(tr '\n' ' ' <"$f")" | sed 's/|/\\|/g')
    v=$(med3 vq "$DB" "$sql")
    s="-"
    # The shell has no time limit: what vmsnap gave up on is not run there.
    [ -n "$SHELL3" ] && [ "$v" != timeout ] && s=$(ms "$(med3 sq "$DB" "$sql")")
    lit="-"
    if grep -q "(SELECT m[ai][xn](id) FROM snapshots" "$f"; then
      lsql=$(sed -e "s/(SELECT max(id) FROM snapshots WHERE target_id = 1)/$LAST/g" \
        -e "s/(SELECT min(id) FROM snapshots WHERE target_id = 1)/$FIRST/g" \
        -e "s/(SELECT max(id) FROM snapshots)/$LAST/g" "$f")
      l=$(med3 vq "$DB" "$lsql")
      lit="$(ms "$l")"
      [ "$v" != timeout ] && [ "$l" != timeout ] && lit="$lit ($(ratio "$v" "$l")x)"
    fi
    echo "| \`$name...\` | $(ms "$v") | $s | $lit |"
  done
done
