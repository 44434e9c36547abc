#!/usr/bin/env bash
# Recording a process tree: a shell starting CHILDREN `sleep` processes, recorded at 100 ms until
# they exit. Prints the recorder's peak RSS, CPU and the bytes it wrote to disk (rusage's
# ru_oublock), against the database it made (the peer for the bytes: what had to be kept).
# Median of 3 for the times; every run's bytes.
#   bench/tree_record.sh [CHILDREN] [SECONDS]        default 100 children living 4 s
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-100}
S=${2:-4}
build_release
build_rusage
V="$PWD/$OUT/build/vmsnap"
DB="$OUT/tree-record.db"
for i in 1 2 3; do
  rm -f "$DB" "$DB"-wal "$DB"-shm
  read -r peak user sys wall out < <("$OUT/rusage" "$V" -d "$DB" record -i 100ms -- sh -c \
    "for i in \$(seq $N); do sleep $S & done; wait" 2>&1 >/dev/null | tail -1)
  size=$(stat -c %s "$DB")
  snaps=$("$V" -d "$DB" query "SELECT count(*) FROM snapshots" | tail -1 | tr -d ' ')
  echo "run $i: $snaps snapshots of $((N + 1)) processes; peak RSS $peak KB; user $user s, sys $sys s;" \
    "wrote $out bytes for a $size-byte database ($(ratio "$out" "$size" 1)x)"
done
