#!/usr/bin/env bash
# One command for the end-to-end benchmarks: installs the peers when missing
# (openssh, tinyproxy and haproxy from Debian, rathole from crates.io into
# benches/.tools), builds comgate and the bench binary in release mode, runs them and
# prints the markdown tables.
#
#   benches/run.sh [--bytes N] [--runs N] [--rounds N] [--setups N]
#                  [--skip ssh,rathole,relay,delay,frontdoor,bulk,loaded,setup]
#   BENCH_UPDATE_DOC=1 benches/run.sh ...   # also write the table into BENCHMARKS.md
#   BENCH_IDLE=1 benches/run.sh ...          # then also the idle-memory figures
#   benches/run.sh idle [--sites 1000,10000] [--max N] [--tunnels M]   # only those
#
# The idle figures need one open file per site in this process and in comgate serve:
# the open-file limit is raised as far as the hard limit allows.
#
# Not part of CI: CI only compiles this crate.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

need_apt=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The front-door peers (tinyproxy alone and behind haproxy's TLS).
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || need_apt+=(tinyproxy)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
if [ ! -x benches/.tools/bin/rathole ]; then
    # rathole's default features use native-tls (OpenSSL).
    command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
    dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing ${need_apt[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >&2 \
        || echo "apt-get install ${need_apt[*]} failed; what is missing is left out" >&2
fi
if [ ! -x benches/.tools/bin/rathole ]; then
    echo "installing rathole into benches/.tools" >&2
    # Its lock file pins time 0.3.29, which current compilers refuse
    # (a type inference change in Rust 1.80); then the newest compatible
    # dependencies are taken instead.
    cargo install --locked rathole --root benches/.tools >&2 \
        || cargo install rathole --root benches/.tools >&2 \
        || echo "rathole could not be built; it is left out" >&2
fi

cargo build --release -p gateway -p comgate-benches >&2

# Idle sites need one descriptor each (here and in serve, which inherits the limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "${1:-}" = idle ]; then
    exec target/release/comgate-bench "$@"
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
target/release/comgate-bench "$@" | tee "$out"

if [ "${BENCH_UPDATE_DOC:-0}" = 1 ] && [ -f BENCHMARKS.md ]; then
    python3 - "$out" <<'PY'
import sys, re
table = open(sys.argv[1]).read().strip()
doc = open("BENCHMARKS.md").read()
start, end = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
new = re.sub(re.escape(start) + ".*?" + re.escape(end),
             start + "\n" + table.replace("\\", "\\\\") + "\n" + end, doc, flags=re.S)
open("BENCHMARKS.md", "w").write(new)
PY
    echo "BENCHMARKS.md updated" >&2
fi

if [ "${BENCH_IDLE:-0}" = 1 ]; then
    echo
    target/release/comgate-bench idle
fi
