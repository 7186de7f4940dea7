#!/usr/bin/env bash
# A storm of sign-ins must not stall the API: 50 connections signing in as fast as they can
# (each sign-in an Argon2id check: 19 MiB, 2 passes) while 16 connections read
# GET /conversation/1/ with an API key. Prints the reads' requests/s, p50 and p99 alone and
# during the storm, and the sign-ins per second.
#
#   bash benches/login_storm.sh            # SQLite
#   DATABASE=postgres bash benches/login_storm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
duration=${DURATION:-10s}
pg_admin=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
cargo build --quiet --release --example server
server="$PWD/target/release/examples/server"
work="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=${PORT:-8091}
token=storm-token
if [ "${DATABASE:-sqlite}" = postgres ]; then
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS cartloop_storm" -c "CREATE DATABASE cartloop_storm"
  url="${pg_admin%/*}/cartloop_storm"
else
  url="sqlite://$work/cartloop.db"
fi
(cd "$work" && CARTLOOP_API_TOKEN=$token RUST_LOG=warn BIND="127.0.0.1:$port" DATABASE_URL="$url" \
  OUTBOX_DIR="$work/outbox" exec "$server") &
pid=$!
for _ in $(seq 1 100); do curl -sf "localhost:$port/healthz" >/dev/null && break; sleep 0.1; done
admin=(-H "Authorization: Bearer $token")
base="localhost:$port"
curl -sf "${admin[@]}" "$base/import_data/" >/dev/null
key=$(curl -sf "${admin[@]}" -d '{"name":"reader","role":"integration","storeId":1}' "$base/api-keys/" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
# 50 operators, one per sign-in connection: a lockout never cuts the storm short.
for n in $(seq 1 50); do
  curl -sf "${admin[@]}" -d "{\"name\":\"Op $n\",\"storeId\":1,\"group\":\"sales\",\"email\":\"op$n@storm.example\",\"password\":\"storm passphrase $n\"}" \
    "$base/operators/" >/dev/null
done
cat >"$work/login.lua" <<'LUA'
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("offset", counter)
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  local i = ((n * 7 + offset) % 50) + 1
  return wrk.format("POST", "/login", {["Content-Type"] = "application/json"},
    string.format('{"email":"op%d@storm.example","password":"storm passphrase %d"}', i, i))
end
LUA
reads() { # label
  wrk -t1 -c16 -d"$duration" --latency -H "Authorization: Bearer $key" "http://127.0.0.1:$port/conversation/1/" >"$work/reads.out"
  awk -v l="$1" '/Requests\/sec/ { rps = $2 } /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
    /Non-2xx or 3xx/ { e = $5 }
    END { printf "%-22s GET /conversation/1/ %7.0f req/s  p50 %-8s p99 %-8s non-2xx %s\n", l, rps, p50, p99, (e == "" ? 0 : e) }' "$work/reads.out"
}
reads "alone"
wrk -t1 -c50 -d"$duration" --timeout 30s -s "$work/login.lua" "http://127.0.0.1:$port" >"$work/logins.out" &
storm=$!
sleep 1
reads "during 50 sign-ins"
wait "$storm"
awk '/Requests\/sec/ { rps = $2 } /Non-2xx or 3xx/ { e = $5 } /Latency/ { lat = $2 }
  END { printf "%-22s POST /login          %7.1f req/s  mean %-8s non-2xx %s\n", "the storm", rps, lat, (e == "" ? 0 : e) }' "$work/logins.out"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
[ "${DATABASE:-sqlite}" = postgres ] && psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS cartloop_storm"
exit 0
