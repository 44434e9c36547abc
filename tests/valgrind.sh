#!/bin/sh
# valgrind memcheck of vmsnap's commands on a live process: snap (smaps and maps), record,
# diff (table and JSON, the interval path and the whole-snapshot path), show, list, query,
# growth, report, import of saved maps and smaps text and of a core file, merge of another
# database (the same process recorded apart there; then again), record --stacks (launched and
# attached) with growth, show and diff of what it recorded, and mark with a recorder (itself
# under valgrind) taking it.
# Any memory error or definite leak fails:  valgrind.sh VMSNAP VM_CHILD
set -eu
vmsnap=$1 child=$2
command -v valgrind >/dev/null || { echo "valgrind is not installed: skipped"; exit 77; }
dir=$(mktemp -d /tmp/vmsnap-valgrind-XXXXXX)
db=$dir/v.db
fifo=$dir/in
mkfifo "$fifo"
"$child" <"$fifo" >/dev/null &
pid=$!
exec 3>"$fifo"
vg() {
  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite "$vmsnap" -d "$db" "$@"
}
status=0
run() {
  vg "$@" >/dev/null || {
    rc=$?
    # diff answers 1 when there are changes; anything else is a failure.
    case " $* " in *" diff "*) [ $rc = 1 ] && return 0 ;; esac
    echo "valgrind.sh: 'vmsnap $*' failed with status $rc" >&2
    status=1
  }
}
run snap -p "$pid" --label before
echo "map 1048576 rw-" >&3
echo "many 200" >&3
sleep 0.2
run snap -p "$pid" --detail maps
run record -p "$pid" -n 3 -i 50ms
run record -p "$pid" -n 2 -i 0 --detail smaps --label-prefix vg
run diff before last
run -j diff first last
run diff first last~1 --summary
run show last
run -j show before
run list
run -j query "SELECT count(*) FROM regions"
run growth
run -j growth
run report -o "$dir/r.html"
cat "/proc/$pid/maps" >"$dir/saved.maps"
cat "/proc/$pid/smaps" >"$dir/saved.smaps"
run import "$dir/saved.maps" "$dir/saved.smaps" --target-name saved
run -j import "$dir/saved.maps" --taken-at 2026-01-01T00:00:00Z --label vg-import
run import "$(dirname "$0")/fixtures/tiny.core"
"$vmsnap" -d "$dir/other.db" snap -p "$pid" >/dev/null
run merge "$dir/other.db"
run -j merge "$dir/other.db" "$db"
# Call stacks: a launched shell that forks and execs, attached to the live process, and the
# answers that name the code behind each region.
if "$vmsnap" -d "$dir/probe.db" record --stacks -n 1 -- true >/dev/null 2>&1; then
  main_db=$db
  db=$dir/stacks.db
  run record --stacks -i 50ms -- /bin/sh -c 'sleep 0.2; true'
  run record --stacks -p "$pid" -t 300ms -i 100ms
  run growth
  run -j show last
  run -j diff first last
  db=$main_db
else
  echo "valgrind.sh: record --stacks is not available here: its commands are skipped"
fi
valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite "$vmsnap" -d "$db" record -p "$pid" -i 1h >/dev/null 2>&1 &
rec=$!
i=0
until [ "$("$vmsnap" -d "$db" query "SELECT count(*) FROM recorders" | tail -1 | tr -d ' ')" = 1 ]; do
  i=$((i + 1))
  [ $i -lt 300 ] || { echo "valgrind.sh: the recorder did not start" >&2; status=1; break; }
  sleep 0.1
done
run mark --label vg
kill -TERM "$rec"
wait "$rec" || { echo "valgrind.sh: the recorder under valgrind failed with $?" >&2; status=1; }
exec 3>&-
wait "$pid" || true
rm -rf "$dir"
[ $status = 0 ] && echo "valgrind: no memory errors or definite leaks in the commands"
exit $status
