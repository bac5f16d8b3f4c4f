#!/usr/bin/env bash
# Single-record POST over HTTP on SQLite, beside the HTTP-layer baseline (GET /healthz) in the same run.
# Needs wrk (apt-get install wrk). Usage: bash crates/cli/benches/http_post.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../../.."
seconds=${1:-10}
connections=${2:-16}
cargo build --release -q
dir=$(mktemp -d)
port=18089
TRELLIS_ADMIN_PASSWORD=bench-admin TRELLIS_LOG=warn ./target/release/trellis serve --data-dir "$dir" --addr 127.0.0.1:$port >"$dir/out.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$dir/out.log" && break; sleep 0.1; done
base=http://127.0.0.1:$port
TOKEN=$(curl -s $base/api/auth/login -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bench-admin"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
curl -s -o /dev/null -w 'create app: %{http_code}\n' $base/api/apps -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d @- <<'JSON'
{"trellis.json": {"format_version": 1, "id": "bench", "version": "1.0.0", "name": {"en": "Bench", "zh-CN": "基准"}},
 "entities/customer.schema.json": {"type": "object", "x-trellis": {"format_version": 1},
   "properties": {"name": {"type": "string", "minLength": 1}, "email": {"type": "string", "format": "email"},
                  "score": {"type": "integer", "minimum": 0, "maximum": 100}, "region": {"type": "string"}},
   "required": ["name"]}}
JSON
cat >"$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/api/apps/bench/entities/customer/records", nil,
    string.format('{"name": "Customer %d", "email": "c%d@example.com", "score": %d, "region": "north"}', counter, counter, counter % 100))
end
LUA
echo "== baseline: GET /healthz (HTTP layer + one SELECT 1)"
wrk -t2 -c"$connections" -d"${seconds}s" --latency $base/healthz | grep -E "Requests/sec|99%|Latency "
echo "== Trellis: POST one record (auth, validate, insert + history + change log, one transaction)"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$dir/post.lua" $base | grep -E "Requests/sec|99%|Latency |Non-2xx"
