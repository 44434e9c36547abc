#!/usr/bin/env bash
# What `vmsnap record --stacks -p PID` costs a running program (issue 23): attached, no filter
# can be added, so every system call stops in the tracer. bench/trace_mixed.c times its own
# N rounds of one mmap+munmap pair and 10 getppid calls: untraced, with `vmsnap record --stacks
# -- ` (launched: the filter stops only the memory calls), under `strace -f -p` and under
# `vmsnap record --stacks -p` (both attached at its start). Median of 3 runs each. And what a
# call the filter lets through costs a launched program (bench/trace_getppid.c).
#   bench/attach_cost.sh [ROUNDS]     default 5,000
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-5000}
command -v strace >/dev/null || { echo "attach_cost: strace is needed" >&2; exit 2; }
build_release
V="$OUT/build/vmsnap"
cc -O2 -o "$OUT/trace_mixed" bench/trace_mixed.c
DB="$OUT/attach.db"
M="$OUT/trace_mixed"
bare() { "$M" "$N"; }
launched() { rm -f "$DB"*; "$V" -d "$DB" record --stacks -- "$M" "$N" 2>/dev/null; }
# Attached while it sleeps before its rounds; its own time says what the rounds cost.
attached() {
  local tracer=$1
  rm -f "$DB"*
  "$M" "$N" >"$OUT/mixed.out" &
  local pid=$!
  sleep 0.1
  if [ "$tracer" = strace ]; then
    strace -f -o /dev/null -p "$pid" 2>/dev/null &
  else
    "$V" -d "$DB" record --stacks -p "$pid" 2>/dev/null &
  fi
  wait "$pid"
  wait || true
  cat "$OUT/mixed.out"
}
median3() { for i in 1 2 3; do "$@"; done | sort -n | sed -n 2p; }
b=$(median3 bare)
l=$(median3 launched)
s=$(median3 attached strace)
a=$(median3 attached vmsnap)
per() { awk -v us="$1" -v n="$N" 'BEGIN { printf "%.1f", us / n }'; }
# The system calls the filter lets through: a million getppid, timed by the program itself.
cc -O2 -o "$OUT/trace_getppid" bench/trace_getppid.c
G="$OUT/trace_getppid"
g_bare=$(for i in 1 2 3 4 5; do "$G" 1000000; done | sort -n | sed -n 3p)
g_peer=$(for i in 1 2 3 4 5; do "$G" --allow-all 1000000; done | sort -n | sed -n 3p)
g_launched=$(for i in 1 2 3 4 5; do rm -f "$DB"*; "$V" -d "$DB" record --stacks -- "$G" 1000000 2>/dev/null; done | sort -n | sed -n 3p)
echo "a system call the filter lets through (getppid), median of 5: $g_bare ns alone," \
  "$g_peer ns under a seccomp filter that allows everything (the peer)," \
  "$g_launched ns launched by record --stacks ($(ratio "$g_launched" "$g_peer")x the peer)"
echo "per round of 1 mmap+munmap pair and 10 getppid, $N rounds: untraced $(per "$b") us;" \
  "record --stacks -- (launched) $(per "$l") us ($(ratio "$l" "$b")x);" \
  "strace -f -p $(per "$s") us ($(ratio "$s" "$b")x);" \
  "record --stacks -p (attached) $(per "$a") us ($(ratio "$a" "$b")x untraced," \
  "$(ratio "$a" "$l")x launched, $(ratio "$a" "$s")x strace -p)"
