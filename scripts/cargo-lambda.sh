#!/usr/bin/env bash
# Run the repo's pinned cargo-lambda (installed into .venv/ on first use):
#   scripts/cargo-lambda.sh build --release --arm64 --output-format zip
# The arguments are those of `cargo lambda ...`. The PyPI package brings
# ziglang, which cargo-lambda uses as the linker for cross-compiling (arm64
# from an x86_64 host); .venv/bin goes first on PATH so that it finds it.
set -euo pipefail

CARGO_LAMBDA_VERSION=1.9.2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$ROOT/.venv"
STAMP="$VENV/.cargo-lambda"   # installed version, so that a pin bump reinstalls

"$ROOT/scripts/venv.sh"
ready() {
  local stamp
  [[ -x $VENV/bin/cargo-lambda ]] &&
    read -r stamp 2>/dev/null <"$STAMP" && [[ $stamp == "$CARGO_LAMBDA_VERSION" ]]
}
if ! ready; then
  exec 9>"$VENV/.lock"          # the same lock as venv.sh: one installer at a time
  flock 9 2>/dev/null || true
  if ! ready; then
    echo "cargo-lambda: installing cargo-lambda $CARGO_LAMBDA_VERSION into .venv" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      --require-virtualenv "cargo-lambda==$CARGO_LAMBDA_VERSION"
    echo "$CARGO_LAMBDA_VERSION" >"$STAMP"
  fi
  exec 9>&-
fi

PATH="$VENV/bin:$PATH" exec "$VENV/bin/cargo-lambda" lambda "$@"
