#!/usr/bin/env bash
# Create the repo's Python virtualenv (.venv/) and install the pinned test
# tools into it: moto[server] (local AWS mock) and cfn-lint (template linter).
# Idempotent and quiet when everything is already there.
set -euo pipefail

MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0
PINS="moto[server]==$MOTO_VERSION cfn-lint==$CFN_LINT_VERSION"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.pins"   # records what was installed, so a pin bump reinstalls

ready() {
  [[ -x $VENV/bin/python && -x $VENV/bin/moto_server && -x $VENV/bin/cfn-lint ]] &&
    [[ $(cat "$STAMP" 2>/dev/null) == "$PINS" ]]
}

ready && exit 0

mkdir -p "$VENV"
exec 9>"$VENV/.lock"                    # serialise concurrent first runs
flock 9 2>/dev/null || true
ready && exit 0

# A venv whose interpreter no longer runs (e.g. python3 upgraded) is rebuilt.
if [[ -e $VENV/bin/python ]] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
  find "$VENV" -mindepth 1 -not -name .lock -delete
fi
if [[ ! -x $VENV/bin/python ]]; then
  echo "venv: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
echo "venv: installing $PINS" >&2
# shellcheck disable=SC2086  # PINS is a list of requirement specs
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PINS
"$VENV/bin/python" -c 'import moto, cfnlint'
echo "$PINS" >"$STAMP"
