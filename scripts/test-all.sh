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
# The store's tests run on PostgreSQL too: the server binaries, in any version.
pg_installed() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }
pg_installed || missing="$missing postgresql"
if [ -n "$missing" ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing:$missing"
  case "$missing" in *postgresql*)
    # The tests start their own throwaway servers (crates/pg-harness): no
    # system cluster that would start, and keep running, on port 5432.
    $sudo mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" |
      $sudo tee /etc/postgresql-common/createcluster.d/comgate-tests.conf >/dev/null ;;
  esac
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi
# Where pg-harness finds initdb/postgres/pg_isready: the newest installed version.
if [ -z "${COMGATE_PG_BINDIR:-}" ] && pg_installed; then
  COMGATE_PG_BINDIR="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  export COMGATE_PG_BINDIR
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
