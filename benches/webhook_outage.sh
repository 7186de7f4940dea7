#!/usr/bin/env bash
# A webhook receiver down for DOWN_S seconds (default 600): two real servers on one
# PostgreSQL database keep writing events meanwhile (clients' chats in CONVERSATIONS
# conversations, posted through both servers in turn, one per second); then the receiver
# comes up (nothing listened on its port before: connections were refused) and every event
# must arrive, each once, in order per conversation. Prints how long after the receiver
# came back the last event arrived, and the attempts the servers logged.
#
#   bash benches/webhook_outage.sh                 # DOWN_S=600 CONVERSATIONS=5
#   DOWN_S=30 bash benches/webhook_outage.sh       # a short drill
#   PROFILE=debug DOWN_S=20 bash benches/webhook_outage.sh
set -euo pipefail
cd "$(dirname "$0")/.."

down=${DOWN_S:-600}
conversations=${CONVERSATIONS:-5}
profile=${PROFILE:-release}
pg_admin=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db_url="${pg_admin%/*}/cartloop_outage"
port=${PORT:-8195}
token=outage-drill-token
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")  # absolute: the servers start in $work
flag=(); [ "$profile" = release ] && flag=(--release)
if [ -z "${SERVER:-}" ]; then
  cargo build --quiet "${flag[@]}" --example server
  SERVER="$target/$profile/examples/server"
fi
SERVER=$(realpath "$SERVER")

work="$(mktemp -d)"
pids=()
receiver_pid=""
cleanup() {
  for p in "${pids[@]}" $receiver_pid; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS cartloop_outage" -c "CREATE DATABASE cartloop_outage"
for i in 0 1; do
  p=$((port + i))
  (cd "$work" && exec env RUST_LOG=warn BIND="127.0.0.1:$p" DATABASE_URL="$db_url" \
    CARTLOOP_API_TOKEN="$token" WEBHOOK_ALLOW_PRIVATE=true OUTBOX_DIR="$work/outbox$i" \
    "$SERVER") >"$work/server$i.log" 2>&1 &
  pids[i]=$!
  for _ in $(seq 1 200); do curl -sf "localhost:$p/healthz" >/dev/null && break; sleep 0.05; done
  curl -sf "localhost:$p/healthz" >/dev/null || { cat "$work/server$i.log" >&2; exit 1; }
done
api() { # method path [body [server]]
  local body=(); [ -n "${3:-}" ] && body=(-d "$3")
  curl -sf -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "${body[@]}" "http://127.0.0.1:$((port + ${4:-0}))$2"
}
api GET /import_data/ >/dev/null
receiver_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
api POST /webhooks/ "{\"url\":\"http://127.0.0.1:$receiver_port/hook\",\"events\":[\"chat.received\"],\"storeId\":1}" >"$work/webhook.json"
webhook=$(python3 -c "import json; print(json.load(open('$work/webhook.json'))['webhookId'])")
pairs=()
for c in $(seq 1 "$conversations"); do
  client=$(api POST /clients/ "{\"storeId\":1,\"name\":\"Client $c\",\"email\":\"outage$c@example.com\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["clientId"])')
  conversation=$(api POST /conversations/ "{\"storeId\":1,\"operatorId\":24,\"clientId\":$client}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["conversationId"])')
  pairs+=("$client:$conversation")
done

echo "receiver down for $down s; posting one chat a second through both servers"
posted=0
stop_at=$(( $(date +%s) + down ))
while [ "$(date +%s)" -lt "$stop_at" ]; do
  pair=${pairs[$((posted % conversations))]}
  api POST /chat/ "{\"conversationId\":${pair#*:},\"chat\":{\"payload\":\"Question $posted\",\"userId\":${pair%:*}}}" \
    "$((posted % 2))" >/dev/null
  posted=$((posted + 1))
  sleep 1
done

cat >"$work/receiver.py" <<'PY'
import http.server, json, sys
out = open(sys.argv[2], "a", buffering=1)
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        out.write(f'{self.headers["webhook-id"]} {body["data"]["conversationId"]}\n')
        self.send_response(204); self.end_headers()
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
python3 "$work/receiver.py" "$receiver_port" "$work/received" &
receiver_pid=$!
up=$(date +%s)
echo "receiver up after $posted events; waiting for them"
touch "$work/received"
while [ "$(wc -l <"$work/received")" -lt "$posted" ]; do
  [ $(( $(date +%s) - up )) -gt 3700 ] && { echo "not all delivered within an hour" >&2; exit 1; }
  sleep 1
done
last=$(( $(date +%s) - up ))
sleep 3
api GET "/webhook/$webhook/deliveries/?limit=1000" >"$work/log.json"
python3 - "$work/received" "$posted" "$work/log.json" "$last" <<'PY'
import collections, json, sys
lines = [l.split() for l in open(sys.argv[1])]
posted, last = int(sys.argv[2]), int(sys.argv[4])
ids = [i for i, _ in lines]
by = collections.defaultdict(list)
for i, c in lines:
    by[c].append(i)
ordered = all(v == sorted(v) for v in by.values())
log = json.load(open(sys.argv[3]))["deliveries"]
retrying = sum(1 for d in log if d["status"] == "retrying")
print(f"{len(set(ids))} of {posted} events delivered, {len(ids) - len(set(ids))} repeats, "
      f"in order per conversation: {ordered}; the last {last} s after the receiver came back; "
      f"{retrying} failed attempts among the latest {len(log)} logged")
sys.exit(0 if len(set(ids)) == posted and len(ids) == posted and ordered else 1)
PY
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
pids=()
psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS cartloop_outage"
