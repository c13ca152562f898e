#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: installs the real client and
# server programs the end-to-end tests drive (when missing), then formatting,
# lints, every test, and each fuzz target for FUZZ_SECONDS (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs="make proxytunnel openssh-server openssh-client putty-tools curl tinyproxy socat openssl ca-certificates python3-pacparser chromium libnss3-tools"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# node/npm may come from elsewhere than Debian (nodesource bundles npm): check commands.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing:$missing"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi

# playwright-core drives Debian's /usr/bin/chromium over CDP in the browser tests;
# it downloads no browser. Kept outside the repository, like the apt packages.
node_dir="${COMGATE_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/comgate-node}"
if [ ! -f "$node_dir/node_modules/playwright-core/package.json" ]; then
  mkdir -p "$node_dir"
  (cd "$node_dir" && { [ -f package.json ] || echo '{"private":true}' > package.json; } &&
    npm install --no-audit --no-fund --loglevel=error playwright-core@1.65.1)
fi
export COMGATE_NODE_DIR="$node_dir"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== fuzz"
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
./fuzz/run.sh "${FUZZ_SECONDS:-30}"
echo "== all passed"
