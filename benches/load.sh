#!/usr/bin/env bash
# Load test of the bundled server with wrk (Debian: apt-get install wrk).
#
#   bash benches/load.sh                 # SQLite file + outbox (the embedded default)
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/cartloop_bench bash benches/load.sh
#
# Builds the release server, starts it in a temporary directory on port 8089, imports the
# demo data, then runs three 10 s loads of 32 connections: GET a conversation, POST a
# client's message (stored, never emailed), and POST an operator's message to a client
# inside active hours (stored, and emailed by the dispatcher while the load runs). Prints
# wrk's figures and, at the end, how many of the operator's messages were sent.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
cargo build --release --example server
server="$PWD/target/release/examples/server"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

port=8089
(cd "$work" && RUST_LOG=warn BIND="127.0.0.1:$port" exec "$server") &
pid=$!
for _ in $(seq 1 50); do curl -sf "localhost:$port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "localhost:$port/import_data/" >/dev/null

# The operator writes to the demo client whose zone is inside 09:00-20:00 right now.
conversation=$(python3 - <<'EOF'
from datetime import datetime, timezone
from zoneinfo import ZoneInfo
# Demo conversations with a discount code, by their client's zone.
zones = {7: "Asia/Kolkata", 5: "Europe/London", 2: "America/New_York",
         3: "America/Los_Angeles", 12: "Pacific/Auckland", 9: "Asia/Tokyo"}
for conversation, zone in zones.items():
    if 9 <= datetime.now(timezone.utc).astimezone(ZoneInfo(zone)).hour < 19:
        print(conversation)
        break
EOF
)
operator=$(curl -sf "localhost:$port/conversation/$conversation/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["operatorId"])')

cat >"$work/client.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"conversationId":1,"chat":{"payload":"Thanks, see you soon!","userId":27}}'
EOF
cat >"$work/operator.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"conversationId":$conversation,"chat":{"payload":"Hi << username >>, your code << discountCode >> is waiting.","userId":$operator}}'
EOF

run() {
  echo "== $1"
  shift
  wrk -t2 -c32 -d10s --latency "$@" | tee "$work/wrk.out" |
    grep -E "requests in|Requests/sec|^ +(50|90|99)%|Non-2xx"
}
run "GET /conversation/1/ (3 chats)" "http://127.0.0.1:$port/conversation/1/"
run "POST /chat/ (client)" -s "$work/client.lua" "http://127.0.0.1:$port/chat/"
started=$(date +%s.%N)
run "POST /chat/ (operator, due now)" -s "$work/operator.lua" "http://127.0.0.1:$port/chat/"
posted=$(awk '/requests in/ {print $1}' "$work/wrk.out")

# The dispatcher sends oldest first: once the newest message is sent, all are.
newest() { curl -sf "localhost:$port/conversation/$conversation/?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chats"][0]["status"])'; }
until [ "$(newest)" = sent ]; do sleep 0.2; done
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
echo "== dispatcher: $posted emails written to the outbox $elapsed s after the operator load began ($(echo "$posted / $elapsed" | bc) emails/s)"
kill "$pid"
wait "$pid" || true
