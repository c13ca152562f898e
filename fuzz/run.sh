#!/usr/bin/env bash
# Runs every cargo-fuzz target of comgate for N seconds each (default 30) and
# exits non-zero on the first crash, leak, timeout or build failure. CI calls it.
#
#   fuzz/run.sh            # 30 s per target
#   fuzz/run.sh 300        # longer, e.g. nightly
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# FUZZ_TOOLCHAIN overrides the toolchain (default: nightly). Builds into
# fuzz/target whatever CARGO_TARGET_DIR says, since sanitizer builds must not
# mix with the workspace's. Crash inputs land in fuzz/artifacts/<target>/;
# reproduce one with `cargo +nightly fuzz run <target> <file>`.
set -euo pipefail

secs="${1:-30}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [seconds-per-target]" >&2
    exit 2
fi
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir"

fuzz=(cargo "+$toolchain" fuzz)
common=(--fuzz-dir "$fuzz_dir" --target-dir "$fuzz_dir/target")

mapfile -t targets < <("${fuzz[@]}" list --fuzz-dir "$fuzz_dir")
if [ "${#targets[@]}" -eq 0 ]; then
    echo "run.sh: no fuzz targets found in $fuzz_dir" >&2
    exit 1
fi

"${fuzz[@]}" build "${common[@]}"

failed=()
for t in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$t"
    mkdir -p "$corpus"
    seeds=()
    [ -d "$fuzz_dir/seeds/$t" ] && seeds=("$fuzz_dir/seeds/$t")
    echo "=== $t: ${secs}s ==="
    # The first corpus directory is written to; seeds/ (in git) is only read.
    if "${fuzz[@]}" run "${common[@]}" "$t" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1; then
        echo "=== $t: ok ==="
    else
        echo "=== $t: FAILED (see fuzz/artifacts/$t/) ===" >&2
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "run.sh: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "run.sh: ${#targets[@]} targets, ${secs}s each, no crash"
