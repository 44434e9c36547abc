#!/usr/bin/env bash
# How the first snapshot and the steady tick scale with the number of regions: for each size,
# a vm_child holding that many one-page regions (`many`), `cat /proc/PID/maps` (median of 11),
# the first snapshot into a new database (`snap --detail maps`, median of 3) and the unchanged
# tick (`record --detail maps -i 0`: (51 ticks - 1 tick) / 50), each with its ratio to cat. The
# ratio should stay flat: cost linear in regions. Sizes above 65,530 need vm.max_map_count
# raised: as root the script raises it for the run and puts it back.
#   bench/scaling.sh [SIZES...]          default 1000 10000 60000 100000 200000
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000 60000 100000 200000)
build_release
V="$PWD/$OUT/build/vmsnap"
CHILD="$PWD/$OUT/build/tests/vm_child"
DB="$OUT/scaling.db"
OLD_MAX=$(cat /proc/sys/vm/max_map_count)
if [ "$(id -u)" = 0 ]; then
  sysctl -qw vm.max_map_count=262144
  trap 'sysctl -qw vm.max_map_count="$OLD_MAX"' EXIT
fi

first_snap() { rm -f "$DB" "$DB"-wal "$DB"-shm; "$V" -d "$DB" snap -p "$PID" --detail maps; }

printf '%-9s %10s %12s %7s %12s %7s\n' regions cat_us first_us ratio tick_us ratio
for N in "${SIZES[@]}"; do
  if [ "$N" -gt "$(($(cat /proc/sys/vm/max_map_count) - 100))" ]; then
    printf '%-9s skipped: vm.max_map_count is %s (run as root to raise it)\n' "$N" \
      "$(cat /proc/sys/vm/max_map_count)"
    continue
  fi
  rm -f "$OUT/sin" "$OUT/sout"
  mkfifo "$OUT/sin" "$OUT/sout"
  "$CHILD" <"$OUT/sin" >"$OUT/sout" &
  exec 3>"$OUT/sin" 4<"$OUT/sout"
  echo pid >&3; read -r _ PID <&4
  echo "many $N" >&3; read -r _ <&4
  CAT_US=$(median_us 11 cat "/proc/$PID/maps")
  FIRST_US=$(median_us 3 first_snap)
  ONE_US=$(median_us 3 "$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n 1)
  MANY_US=$(median_us 3 "$V" -d "$DB" record -p "$PID" --detail maps -i 0 -n 51)
  TICK_US=$(((MANY_US - ONE_US) / 50))
  printf '%-9s %10s %12s %7s %12s %7s\n' "$(grep -c . "/proc/$PID/maps")" "$CAT_US" "$FIRST_US" \
    "$(ratio "$FIRST_US" "$CAT_US")" "$TICK_US" "$(ratio "$TICK_US" "$CAT_US")"
  echo "exit 0" >&3
  exec 3>&- 4<&-
  wait 2>/dev/null || true
done
