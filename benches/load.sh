#!/usr/bin/env bash
# Load test of the bundled server with wrk (Debian: apt-get install wrk): the figures of
# the throughput targets of BENCHMARKS.md, one line per figure.
#
#   bash benches/load.sh                  # SQLite and PostgreSQL
#   bash benches/load.sh sqlite           # one backend
#   SCALE=1 bash benches/load.sh          # also with 1,000,000 messages stored
#   SERVER=/path/to/server bash benches/load.sh   # another build (e.g. a baseline)
#   AUTH=key bash benches/load.sh         # every request with an API key (checked in the
#                                         # database on each request); AUTH=session: with an
#                                         # operator's session cookie; AUTH=token: the
#                                         # deployment token; unset: an open server
#
# For each backend: builds and starts the release server in a temporary directory (SQLite
# file, or a fresh PostgreSQL database `cartloop_load`), imports the demo data, then runs
# `wrk -t2 -c64 -d${DURATION:-10s}` against, in order:
#   404        GET /nope (the server's own ceiling: routing and an error body, no database)
#   get3       GET /conversation/1/ (the demo's 3 chats)
#   post       POST /chat/ with the seed's body (an operator's message to conversation 1,
#              scheduled outside the run: see ACTIVE_HOURS below)
#   get50      GET /conversation/1/?limit=50 (after the POSTs, once the dispatcher has sent
#              them: 50 chats)
# and prints requests/s, p50, p99 and the errors, then the server's peak RSS.
# With SCALE=1 it then loads 1,000,000 messages over 10,000 conversations
# (`cargo run --release --example bulk_load`) and runs get50 and post again.
set -euo pipefail
cd "$(dirname "$0")/.."

backends=${1:-both}
duration=${DURATION:-10s}
pg_admin=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
if [ -z "${SERVER:-}" ]; then
  cargo build --quiet --release --example server
  SERVER="$PWD/target/release/examples/server"
fi
if [ "${SCALE:-0}" = 1 ]; then
  cargo build --quiet --release --example bulk_load
fi
# The POSTs go to conversation 1, whose client is in America/Chicago. Unless ACTIVE_HOURS is
# given, the window is set to exclude the client's current hour, so the POSTs are stored and
# scheduled, not emailed during the run: `post` measures the API and the database, whatever
# the time of day (the dispatcher's throughput is `examples/dispatch_throughput.rs`).
if [ -z "${ACTIVE_HOURS:-}" ]; then
  ACTIVE_HOURS=$(python3 -c '
from datetime import datetime
from zoneinfo import ZoneInfo
h = datetime.now(ZoneInfo("America/Chicago")).hour
start, end = (h + 2) % 24, (h + 3) % 24
print(f"{start:02}:00-{end or 24:02}:00")')
fi
export ACTIVE_HOURS
work="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=${PORT:-8089}

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"conversationId":1,"chat":{"payload":"Sure {{ username }}. Here is your code {{ discountCode }}","userId":24}}'
LUA

token=load-token
auth=()   # wrk's and curl's credential header, set by `credential` once the server runs
start() { # database url
  local token_env=()
  [ -n "${AUTH:-}" ] && token_env=(CARTLOOP_API_TOKEN="$token")
  (cd "$work" && exec env "${token_env[@]}" RUST_LOG=warn BIND="127.0.0.1:$port" DATABASE_URL="$1" \
    OUTBOX_DIR="$work/outbox" "$SERVER") &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "localhost:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}

stop() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

# figure <backend> <name> <wrk args...>: one line: requests/s, p50, p99, non-2xx.
figure() {
  local backend=$1 name=$2
  shift 2
  wrk -t2 -c64 -d"$duration" --latency "$@" >"$work/wrk.out" 2>&1
  awk -v b="$backend" -v n="$name" '
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
    /Non-2xx or 3xx/ { errors = $5 }
    /Socket errors/ { socket = $0 }
    END { printf "%-9s %-6s %10.0f req/s   p50 %-8s p99 %-8s non-2xx %s%s\n", b, n, rps, p50, p99, (errors == "" ? 0 : errors), (socket == "" ? "" : "  " socket) }
  ' "$work/wrk.out"
}

# Waits until the dispatcher has sent every message the POSTs wrote (at most 3 minutes), so
# that the reads after them measure reads, not reads beside a draining dispatcher.
drain() {
  # The dispatcher sends oldest first: once the newest chat is sent, all are. (Read from the
  # conversation rather than /metrics, so a baseline build without /metrics works too.)
  # A message not due yet (the client outside active hours) has nothing to drain.
  for _ in $(seq 1 1800); do
    newest=$(curl -sf -H "Authorization: Bearer $token" "localhost:$port/conversation/1/?limit=1" | python3 -c '
import json, sys
from datetime import datetime, timezone
chat = json.load(sys.stdin)["chats"][0]
later = chat["sendAt"] and datetime.fromisoformat(chat["sendAt"].replace("Z", "+00:00")) > datetime.now(timezone.utc)
print("sent" if chat["status"] == "sent" or later else chat["status"])')
    [ "$newest" = sent ] && return
    sleep 0.1
  done
  echo "the dispatcher did not drain: the newest chat is $newest" >&2
}

# The credential every request of the run carries (AUTH), made through the API.
credential() {
  local admin=(-H "Authorization: Bearer $token") base="localhost:$port"
  case "${AUTH:-}" in
    "") auth=() ;;
    token) auth=(-H "Authorization: Bearer $token") ;;
    key)
      local key
      key=$(curl -sf "${admin[@]}" -d '{"name":"load","role":"integration","storeId":1}' "$base/api-keys/" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
      auth=(-H "Authorization: Bearer $key") ;;
    session)
      # Dan Brooks (24) signs in; the POSTs then need this server's Origin.
      curl -sf "${admin[@]}" -X PATCH -d '{"email":"dan@load.example","password":"load test passphrase"}' \
        "$base/operator/24/" >/dev/null
      local cookie
      cookie=$(curl -sf -D - -o /dev/null -d '{"email":"dan@load.example","password":"load test passphrase"}' \
        "$base/login" | awk -F'[ ;]' 'tolower($1) == "set-cookie:" { print $2 }')
      auth=(-H "Cookie: $cookie" -H "Origin: http://127.0.0.1:$port") ;;
    *) echo "AUTH is key, session, token or unset" >&2; exit 1 ;;
  esac
}

rss() { awk '/VmHWM/ { printf "%-9s rss    peak %d MB\n", b, $2 / 1024 }' b="$1" "/proc/$pid/status"; }

run_backend() { # name url
  local name=$1 url=$2
  start "$url"
  curl -sf -H "Authorization: Bearer $token" "localhost:$port/import_data/" >/dev/null
  credential
  local base="http://127.0.0.1:$port"
  figure "$name" 404 "${auth[@]}" "$base/nope"
  figure "$name" get3 "${auth[@]}" "$base/conversation/1/"
  figure "$name" post "${auth[@]}" -s "$work/post.lua" "$base/chat/"
  drain
  figure "$name" get50 "${auth[@]}" "$base/conversation/1/?limit=50"
  rss "$name"
  if [ "${SCALE:-0}" = 1 ]; then
    stop
    ./target/release/examples/bulk_load "$url" 1000000 10000
    start "$url"
    credential
    figure "$name-1M" get50 "${auth[@]}" "$base/conversation/1/?limit=50"
    figure "$name-1M" post "${auth[@]}" -s "$work/post.lua" "$base/chat/"
    drain
    figure "$name-1M" get50 "${auth[@]}" "$base/conversation/1/?limit=50"
    rss "$name-1M"
  fi
  stop
}

if [ "$backends" = both ] || [ "$backends" = sqlite ]; then
  run_backend sqlite "sqlite://$work/cartloop.db"
fi
if [ "$backends" = both ] || [ "$backends" = postgres ]; then
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS cartloop_load" -c "CREATE DATABASE cartloop_load"
  run_backend postgres "${pg_admin%/*}/cartloop_load"
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS cartloop_load"
fi
