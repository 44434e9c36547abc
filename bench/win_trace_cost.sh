#!/usr/bin/env bash
# What a traced memory call costs on Windows (issue 23), under Wine: N VirtualAlloc+VirtualFree
# pairs (bench/win_alloc_loop.c, which times itself) run untraced, under the least a debugger
# can do to see each call (bench/win_bp_peer.c: one breakpoint event a call, the peer), and
# under `vmsnap record --stacks` (two events a call, its entry and its return, with the stack).
# Per pair, median of 3 runs, and the ratio to the peer.
#   bench/win_trace_cost.sh [PAIRS]     default 1,000 (a debug event costs ~0.6 ms under Wine)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-1000}
W="$OUT/build-win"
mkdir -p "$OUT"
command -v x86_64-w64-mingw32-gcc >/dev/null && command -v wine >/dev/null ||
  { echo "win_trace_cost: mingw-w64 and Wine are needed (scripts/test.sh installs them)" >&2; exit 2; }
scripts/fetch-sqlite.sh >/dev/null
cmake -S . -B "$W" -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$W" -j2 --target vmsnap >/dev/null
x86_64-w64-mingw32-gcc -O2 -o "$W/win_alloc_loop.exe" bench/win_alloc_loop.c
x86_64-w64-mingw32-gcc -O2 -o "$W/win_bp_peer.exe" bench/win_bp_peer.c
export WINEPREFIX="$PWD/$W/wineprefix" WINEARCH=win64 WINEDEBUG=-all
mkdir -p "$WINEPREFIX"
wineboot --init >/dev/null 2>&1 || true
# per_pair CMD...: the median of 3 runs of what the loop reports per pair.
per_pair() {
  for _ in 1 2 3; do "$@" 2>/dev/null | sed -n 's/^us_per_pair //p'; done | sort -n | sed -n 2p
}
L="$W/win_alloc_loop.exe"
bare=$(per_pair wine "$L" $((N * 20)))
peer=$(per_pair wine "$W/win_bp_peer.exe" "$L" "$N")
rec() { rm -f "$W/cost.db"; wine "$W/vmsnap.exe" -d "$W/cost.db" record --stacks -i 1s -- "$L" "$N"; }
stacks=$(per_pair rec)
echo "per VirtualAlloc+VirtualFree pair, $N pairs, under Wine: untraced $bare us;" \
  "one breakpoint event a call (the peer) $peer us;" \
  "vmsnap record --stacks $stacks us ($(ratio "$stacks" "$peer")x the peer)"
wineserver -k >/dev/null 2>&1 || true
