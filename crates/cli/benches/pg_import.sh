#!/usr/bin/env bash
# Bulk import into PostgreSQL beside `COPY` with psql, in the same run: starts a throw-away cluster with
# the system's initdb/pg_ctl (as the postgres user when run as root), runs the records bench against it,
# and removes the cluster. Usage: bash crates/cli/benches/pg_import.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/../../.."
rows=${1:-200000}
bin=$(dirname "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")
dir=$(mktemp -d)
chmod 755 "$dir"
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; as_pg=(runuser -u postgres --); fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >/dev/null
# Durable settings as a production server would run (fsync on): the baseline pays the same.
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1" \
  -l "$dir/pg.log" -w start >/dev/null
trap '"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null; rm -rf "$dir"' EXIT
TRELLIS_BENCH_PG_URL="postgres://postgres@127.0.0.1:$port/postgres" \
  cargo bench -p trellis-cli --bench records -- "$rows" "${@:2}"
