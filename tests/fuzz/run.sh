#!/bin/sh
# Runs one libFuzzer target for a bounded time on its seed corpus, made from tests/fixtures:
#   run.sh FUZZER CORPUS_DIR SECONDS
# The corpus directory keeps what the fuzzer finds, so later runs start from there.
set -eu
bin=$1 corpus=$2 seconds=$3
fixtures=$(cd "$(dirname "$0")/../fixtures" && pwd)
mkdir -p "$corpus"
case $(basename "$bin") in
fuzz_maps)
  cp "$fixtures"/* "$corpus"/
  ;;
fuzz_diff)
  # Text seeds: "T", one maps text, a line "====", another.
  for a in "$fixtures"/*.maps; do
    for b in "$fixtures"/*.maps; do
      out="$corpus/seed-$(basename "$a" .maps)-$(basename "$b" .maps)"
      { printf 'T'; cat "$a"; printf '====\n'; cat "$b"; } >"$out"
    done
  done
  # A record seed: both lists share regions, then differ (see fuzz_diff.c).
  printf '\000\002\001\000\003\002\000\000\000\000\002\000\004\001\001\000\000\001\003\000\002\000\000\000\202' >"$corpus/seed-records"
  ;;
fuzz_args)
  i=0
  for s in '\0001.5s' '\000250ms' '\0002h' '\0011.5M' '\00164K' '\0014096' '\00242' '\0034242' \
    '\004first' '\004last' '\004last~1' '\004before' '\0042' '\004last~99' '\004after'; do
    printf "$s" >"$corpus/seed-$i"
    i=$((i + 1))
  done
  ;;
esac
exec "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 "$corpus"
