#!/usr/bin/env bash
# The CLM nightly batch (RFM, tier window, BG/NBD refit, points, lead decay) on a seeded app, step by
# step, beside DuckDB on the same orders. Usage: bash crates/cli/benches/clm_nightly.sh [customers]
set -euo pipefail
cd "$(dirname "$0")/../../.."
customers=${1:-100000}
cargo build --release -p trellis-cli
python3 -c 'import duckdb' 2>/dev/null || pip install --quiet duckdb
python3 crates/cli/benches/clm_nightly.py target/release/trellis "$customers"
