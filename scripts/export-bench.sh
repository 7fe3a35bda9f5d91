#!/usr/bin/env bash
# Hourly export benchmark: ours (dpl::export driver; one partition at a time,
# then one per CPU) against DuckDB converting the same staged files to the
# same CSV with one thread and with two, in the same run.
#   scripts/export-bench.sh [N...]          (default: 1000000 10000000)
# For each N: builds and runs tools/dplctl/examples/export_bench.rs (which
# generates N staged events under target/export-bench/N/ once), then
# scripts/duckdb_export.py on the same `.ndjson.gz` objects with DuckDB
# threads=1 and threads=2, and compares the CSV files byte for byte.
# Peak memory: VmHWM for ours, ru_maxrss of the python process for DuckDB.
set -euo pipefail

# The newest DuckDB on PyPI when this was last measured (pip index versions duckdb).
DUCKDB_VERSION=2.0.1
HOUR=2020-08-28-09

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
[[ $# -gt 0 ]] || set -- 1000000 10000000

scripts/venv.sh
if [[ $(.venv/bin/python -c 'import duckdb; print(duckdb.__version__)' 2>/dev/null) != "$DUCKDB_VERSION" ]]; then
  echo "export-bench: installing duckdb==$DUCKDB_VERSION into .venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check --require-virtualenv "duckdb==$DUCKDB_VERSION"
fi

cargo build --release --quiet -p dplctl --example export_bench
BENCH="$ROOT/target/release/examples/export_bench"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(free -g | awk '/^Mem:/{print $2}') GiB RAM"
for n in "$@"; do
  dir="target/export-bench/$n"
  echo "== $n staged events"
  "$BENCH" "$n" 1
  "$BENCH" "$n"
  for threads in 1 2; do
    out="$dir/duckdb-$threads"
    rm -rf "$out"
    .venv/bin/python scripts/duckdb_export.py "$dir/staging/$HOUR" "$out" "$threads"
    same=0 differ=0
    while IFS= read -r ours; do       # exports/{oem}/{type}/{hour}/{type}.csv
      rel=${ours#"$dir/exports/"}
      IFS=/ read -r oem kind _ file <<<"$rel"
      if cmp -s "$ours" "$out/$oem/$kind/$file"; then
        same=$((same + 1))
      else
        differ=$((differ + 1))
        echo "  DIFFERS: $rel" >&2
      fi
    done < <(find "$dir/exports" -name '*.csv' | sort)
    echo "  CSV files byte-identical to ours: $same, differing: $differ"
    rm -rf "$out"
  done
done
