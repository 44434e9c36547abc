# Shared by the bench scripts (sourced): timing a command and ratios.

ns() { date +%s%N; }

# median_us N CMD...: the median of N runs of CMD (its output discarded), in microseconds.
median_us() {
  local n=$1; shift
  local times=()
  for ((i = 0; i < n; i++)); do
    local t0; t0=$(ns); "$@" >/dev/null 2>&1; local t1; t1=$(ns)
    times+=($(((t1 - t0) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((n + 1) / 2))p"
}

# median_ms N CMD...: the same in milliseconds.
median_ms() { echo $(($(median_us "$@") / 1000)); }

# time_us CMD...: one run of CMD (its output discarded), in microseconds.
time_us() {
  local t0; t0=$(ns); "$@" >/dev/null 2>&1 || true; local t1; t1=$(ns)
  echo $(((t1 - t0) / 1000))
}

# stats V...: "min median max" of the values.
stats() {
  local sorted; sorted=$(printf '%s\n' "$@" | sort -n)
  local n=$#
  echo "$(echo "$sorted" | head -1) $(echo "$sorted" | sed -n "$(((n + 1) / 2))p") $(echo "$sorted" | tail -1)"
}
# med "min median max": the median.
med() { echo "$1" | cut -d' ' -f2; }
# mmm "min median max": as "min/median/max" in milliseconds with one decimal.
mmm() { echo "$1" | awk '{ printf "%.1f/%.1f/%.1f ms", $1 / 1000, $2 / 1000, $3 / 1000 }'; }

# build_floor: $OUT/floor, which reads the files named and nothing else (bench/floor.c).
build_floor() { cc -O2 -o "$OUT/floor" bench/floor.c; }

# ratio A B [DIGITS]: A / B.
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { printf "%.*f", d, a / b }'; }

# Where the scripts build and write: never in git.
OUT=bench/out

# build_release: the Release tree in $OUT/build with vmsnap and vm_child, the target the
# scripts drive.
build_release() {
  mkdir -p "$OUT"
  cmake -S . -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DVMSNAP_TESTS=ON >/dev/null
  cmake --build "$OUT/build" -j2 --target vmsnap vm_child >/dev/null
}

# build_rusage: $OUT/rusage, which prints a command's peak RSS and CPU time.
build_rusage() { cc -O2 -o "$OUT/rusage" bench/rusage.c; }

# Headless Chromium on a page (the report scripts).
chrome() { chromium --headless --no-sandbox --disable-gpu --dump-dom "file://$1"; }
# page_ms FILE: the page's own measure of its drawing (data-render-ms), median of 7.
page_ms() {
  for ((i = 0; i < 7; i++)); do
    chrome "$1" 2>/dev/null | grep -o 'data-render-ms="[0-9]*"' | grep -o '[0-9]*'
  done | sort -n | sed -n 4p
}
# empty_page FILE: the peer of a report, a page that holds nothing and measures itself alike.
empty_page() {
  cat >"$1" <<'PAGE'
<!DOCTYPE html><html><head><meta charset="utf-8"><title>empty</title></head><body>
<script>void document.body.offsetHeight;
document.documentElement.setAttribute("data-render-ms", String(Math.round(performance.now())));</script>
</body></html>
PAGE
}
