#!/usr/bin/env bash
# Build every function of template.yaml as a Lambda zip and check its size:
#   scripts/build-functions.sh [arm64|x86_64]      (`make build`; default arm64,
#                                                   the template's default)
# Runs `cargo lambda build --release --output-format zip` once for all the
# functions (the packages named by the template's `Binary:` build properties;
# package and binary names are the same here), then prints the size of each
# target/lambda/{name}/bootstrap.zip and fails if one is PACKAGE_LIMIT_BYTES
# or more. cargo-lambda cross-compiles with zig (the ziglang wheel that
# `pip install cargo-lambda` brings); the Rust target is added when missing.
set -euo pipefail

# Our own budget, far below Lambda's 50 MB zip upload limit: a small package
# keeps cold starts short (see /work/shared/reference/limits.md, "Lambda").
PACKAGE_LIMIT_BYTES=5000000

ARCH="${1:-arm64}"
case $ARCH in
  arm64) FLAG=--arm64 TRIPLE=aarch64-unknown-linux-gnu ;;
  x86_64) FLAG=--x86-64 TRIPLE=x86_64-unknown-linux-gnu ;;
  *) echo "build: architecture must be arm64 or x86_64, not '$ARCH'" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
mapfile -t FUNCTIONS < <(sed -nE 's/^ +Binary: +([A-Za-z0-9_-]+) *$/\1/p' template.yaml)
if ((${#FUNCTIONS[@]} == 0)); then
  echo "build: no function (BuildProperties.Binary) in template.yaml" >&2
  exit 1
fi

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TRIPLE"; then
  rustup target add "$TRIPLE"
fi

packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done
echo "build: ${FUNCTIONS[*]} for $ARCH" >&2
start=$SECONDS
scripts/cargo-lambda.sh build --release "$FLAG" --output-format zip "${packages[@]}"
echo "build: took $((SECONDS - start)) s" >&2

status=0
printf '%-18s %12s %8s\n' function bytes MB
for f in "${FUNCTIONS[@]}"; do
  zip="target/lambda/$f/bootstrap.zip"
  if [[ ! -f $zip ]]; then
    printf '%-18s %12s\n' "$f" missing
    status=1
    continue
  fi
  bytes=$(stat -c %s "$zip")
  verdict=""
  if ((bytes >= PACKAGE_LIMIT_BYTES)); then
    verdict="  >= $PACKAGE_LIMIT_BYTES bytes: too large"
    status=1
  fi
  printf '%-18s %12d %8s%s\n' "$f" "$bytes" \
    "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1000000 }')" "$verdict"
done
exit "$status"
