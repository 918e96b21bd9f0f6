#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each, one after another, in one
# process each (the machine is shared), and prints for each target the runs, the
# final coverage (cov = edges, ft = features, from libFuzzer's last status line), the
# corpus size and the crashes. Each run stops by itself after SECONDS
# (-max_total_time); the script fails if any target crashed.
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); the stable toolchain
# accepts them with RUSTC_BOOTSTRAP=1, which is all this script needs from nightly.
# Targets are built with debug assertions (-a), so integer overflow panics too.
#
# New inputs go to fuzz/corpus/TARGET (not committed); the handwritten seeds in
# fuzz/seeds/TARGET are read too but never written. Crash inputs go to
# fuzz/artifacts/TARGET, logs to fuzz/logs/TARGET.log.
#
# Usage: scripts/fuzz.sh SECONDS [TARGET...]   (default: every target)
#        STRICT=1 scripts/fuzz.sh ...           also check the rules known to be broken
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
cd fuzz
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
features=()
[ "${STRICT:-0}" = 1 ] && features=(--features strict)

# Longest input per target: IRC lines are short; line-protocol lines and streams
# are allowed to exceed the 2048-byte default line limit.
max_len() {
  case $1 in
    irc_parser) echo 1024 ;;
    *) echo 4096 ;;
  esac
}

failed=0
summary=()
mkdir -p logs
for target in "${targets[@]}"; do
  cargo fuzz build -a "${features[@]}" "$target"
  mkdir -p "corpus/$target" "seeds/$target" "artifacts/$target"
  crashes_before=$(find "artifacts/$target" -type f | wc -l)
  log="logs/$target.log"
  echo "== $target: ${seconds}s"
  status=0
  cargo fuzz run -a "${features[@]}" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  files=$(find "corpus/$target" -type f | wc -l)
  bytes=$(find "corpus/$target" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  crashes=$(($(find "artifacts/$target" -type f | wc -l) - crashes_before))
  line="$target: runs=${runs:-?} cov=${cov:-?} ft=${ft:-?} corpus=${files} files/${bytes} bytes crashes=${crashes} exit=${status}"
  echo "$line"
  summary+=("$line")
  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -5 || true
  fi
done
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
