#!/usr/bin/env bash
# What a traced memory call costs (issue 23): N mmap+munmap pairs (bench/trace_target.c) run
# untraced, under `strace -f -e trace=memory -o /dev/null` (the peer), under vmsnap's tracer
# without and with stacks (bench/trace_drive.c: the tracer alone), and under `strace -f -k`
# (fewer pairs: it is slow). Per pair, median of 5 runs, and the ratios to the peer.
#   bench/trace_cost.sh [PAIRS]     default 20,000
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-20000}
K=$((N / 20))
mkdir -p "$OUT"
command -v strace >/dev/null || { echo "trace_cost: strace is needed (apt-get install strace)" >&2; exit 2; }
cc -O2 -o "$OUT/trace_target" bench/trace_target.c
cc -O2 -Isrc -o "$OUT/trace_drive" bench/trace_drive.c src/trace/linux_trace.c \
  src/trace/linux_unwind.c src/platform/linux_launch.c src/util/err.c src/util/xalloc.c -ldw
T="$OUT/trace_target"
per() { awk -v us="$1" -v n="$2" 'BEGIN { printf "%.1f", us / n }'; }
bare=$(median_us 5 "$T" "$N")
peer=$(median_us 5 strace -f -e trace=memory -o /dev/null "$T" "$N")
plain=$(median_us 5 "$OUT/trace_drive" "$T" "$N")
stacks=$(median_us 5 "$OUT/trace_drive" --stacks "$T" "$N")
slow=$(median_us 3 strace -f -k -e trace=memory -o /dev/null "$T" "$K")
"$OUT/trace_drive" --stacks "$T" 100 2>&1 >/dev/null | sed 's/^/trace_drive --stacks on 100 pairs: /'
p_peer=$(per "$peer" "$N"); p_plain=$(per "$plain" "$N"); p_stacks=$(per "$stacks" "$N")
p_slow=$(per "$slow" "$K")
echo "per mmap+munmap pair, $N pairs: untraced $(per "$bare" "$N") us;" \
  "strace -f -e trace=memory $p_peer us;" \
  "vmsnap's tracer $p_plain us ($(ratio "$p_plain" "$p_peer")x strace)," \
  "with stacks $p_stacks us ($(ratio "$p_stacks" "$p_peer")x strace);" \
  "strace -f -k $p_slow us ($K pairs): $(ratio "$p_slow" "$p_stacks" 1)x vmsnap with stacks"
