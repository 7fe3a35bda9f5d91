#!/usr/bin/env bash
# Lint the CloudFormation/SAM template (template.yaml at the repo root) with the
# venv's pinned cfn-lint; succeeds with a note while there is no template yet.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
scripts/venv.sh
if [[ ! -f template.yaml ]]; then
  echo "cfn-lint: no template.yaml yet; nothing to lint"
  exit 0
fi
echo "cfn-lint: template.yaml"
exec .venv/bin/cfn-lint template.yaml
