#!/usr/bin/env bash
# Create the repo's Python virtualenv (.venv/) and install the pinned test
# tools into it: moto[server] (local AWS mock) and cfn-lint (template linter).
# Idempotent: quiet and instant when everything is already there.
set -euo pipefail

MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0
PINS="moto[server]==$MOTO_VERSION cfn-lint==$CFN_LINT_VERSION"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$ROOT/.venv"
STAMP="$VENV/.pins"   # what was installed, so that a pin bump reinstalls

points_here() {  # FILE's shebang is this venv's python (not a moved copy's)
  local line
  read -r line <"$1" && [[ $line == "#!$VENV/bin/python"* ]]
}
ready() {
  local stamp
  [[ -f $VENV/pyvenv.cfg && -x $VENV/bin/python && -x $VENV/bin/moto_server &&
     -x $VENV/bin/cfn-lint ]] &&
    points_here "$VENV/bin/moto_server" &&
    read -r stamp 2>/dev/null <"$STAMP" && [[ $stamp == "$PINS" ]]
}

ready && exit 0

mkdir -p "$VENV"
exec 9>"$VENV/.lock"          # serialise concurrent first runs
flock 9 2>/dev/null || true
ready && exit 0

# Rebuild a venv whose interpreter is gone (python3 upgraded), that is no longer
# a venv (pyvenv.cfg lost: pip would install globally) or that was moved.
if [[ -e $VENV/bin/python ]] &&
   ! { "$VENV/bin/python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' \
         2>/dev/null && points_here "$VENV/bin/pip"; }; then
  echo "venv: $VENV is broken or was moved; rebuilding" >&2
  find "$VENV" -mindepth 1 -not -name .lock -delete
fi
if [[ ! -x $VENV/bin/python ]]; then
  echo "venv: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
echo "venv: installing $PINS" >&2
# shellcheck disable=SC2086  # PINS is a list of requirement specifiers
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv $PINS
"$VENV/bin/python" -c 'import moto, cfnlint'
echo "$PINS" >"$STAMP"
