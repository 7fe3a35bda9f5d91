#!/usr/bin/env bash
# Security scan of the SAM template (template.yaml) with a pinned checkov:
#   scripts/checkov.sh [extra checkov arguments]      (`make test` runs it)
# checkov reads SAM resources as they are written (AWS::Serverless::Function
# has its own checks); it does not expand the transform. A check that does
# not apply is skipped in the resource's Metadata, with its reason:
#   Metadata: {checkov: {skip: [{id: CKV_AWS_27, comment: "why"}]}}
#
# checkov lives in its own virtualenv, .venv/checkov/ (removed with .venv by
# `make clean-venv`), installed on first use: about 300 MB and a few minutes,
# and it pins boto3 and networkx to versions that moto and cfn-lint in .venv/
# must not be downgraded to. --skip-download: no Prisma Cloud look-ups, so
# the scan runs offline.
set -euo pipefail

CHECKOV_VERSION=3.3.30

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$ROOT/.venv/checkov"
STAMP="$VENV/.pins"   # installed version, so that a pin bump reinstalls

ready() {
  local stamp
  [[ -f $VENV/pyvenv.cfg && -x $VENV/bin/checkov ]] &&
    read -r stamp 2>/dev/null <"$STAMP" && [[ $stamp == "$CHECKOV_VERSION" ]]
}
if ! ready; then
  mkdir -p "$VENV"
  exec 9>"$VENV/.lock"          # serialise concurrent first runs
  flock 9 2>/dev/null || true
  if ! ready; then
    # A venv whose interpreter is gone or that was moved: start again.
    if [[ -e $VENV/bin/python ]] &&
       ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
      find "$VENV" -mindepth 1 -not -name .lock -delete
    fi
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    echo "checkov: installing checkov $CHECKOV_VERSION into .venv/checkov (first run: a few minutes)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      --require-virtualenv "checkov==$CHECKOV_VERSION"
    echo "$CHECKOV_VERSION" >"$STAMP"
  fi
  exec 9>&-
fi

cd "$ROOT"
if [[ ! -f template.yaml ]]; then
  echo "checkov: no template.yaml yet; nothing to scan"
  exit 0
fi
echo "checkov: template.yaml"
exec "$VENV/bin/checkov" -f template.yaml --framework cloudformation \
  --skip-download --compact --quiet "$@"
