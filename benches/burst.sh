#!/usr/bin/env bash
# A burst of due messages: N messages posted through the API, made due at once, drained by
# 1 or 2 real servers on one PostgreSQL database into a real SMTP server on loopback
# (`examples/smtp_sink.rs`: cartloop's SmtpSink, taking DELAY_MS per email as a distant
# relay would). Prints emails/s, each server's peak RSS and the p99 of GET /conversation/1/
# during the drain (`get_probe.py`, at GET_RATE per second, default 200).
#
#   bash benches/burst.sh                         # N=20000 SERVERS=1 DELAY_MS=20
#   N=1000000 SERVERS=2 DELAY_MS=20 bash benches/burst.sh
#   SERVER=/path/to/server bash benches/burst.sh  # another build (e.g. a baseline)
#   PROFILE=debug N=2000 bash benches/burst.sh    # CI: a debug build, a small N
#
# Steps: a fresh database `cartloop_burst`; server 1 starts with a window that excludes the
# demo client's current hour, so the POSTs (wrk, 64 connections, in slices until at least N
# are stored) are
# stored and held; the servers stop; one UPDATE makes every held message due now; the
# servers start with a window of the whole day (and the settings of the environment, e.g.
# DISPATCH_CONCURRENCY, SMTP_POOL_SIZE) and drain. The drain is timed from the first
# server's start until no message is `new` or `sending`; then every message must be `sent`
# and the sink must have at least N emails (an email is sent again only after a crash).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${N:-20000}
servers=${SERVERS:-1}
delay=${DELAY_MS:-20}
profile=${PROFILE:-release}
pg_admin=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db_url="${pg_admin%/*}/cartloop_burst"
port=${PORT:-8095}
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")  # absolute: the servers start in $work
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
command -v psql >/dev/null || { echo "psql not found: apt-get install postgresql-client" >&2; exit 1; }
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build --quiet "${flag[@]}" --example smtp_sink
SINK="$target/$profile/examples/smtp_sink"
if [ -z "${SERVER:-}" ]; then
  cargo build --quiet "${flag[@]}" --example server
  SERVER="$target/$profile/examples/server"
fi
SERVER=$(realpath "$SERVER")

work="$(mktemp -d)"
pids=()
sink_pid=""
cleanup() {
  for p in "${pids[@]}" $sink_pid ${probe_pid:-}; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$SINK" "$delay" >"$work/sink.out" &
sink_pid=$!
for _ in $(seq 1 100); do [ -s "$work/sink.out" ] && break; sleep 0.1; done
smtp_url=$(head -n1 "$work/sink.out")

sql() { psql -qAt "$db_url" -c "$1"; }
psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS cartloop_burst" -c "CREATE DATABASE cartloop_burst"

start() { # index active_hours
  local i=$1 p=$((port + $1))
  (cd "$work" && exec env RUST_LOG=warn BIND="127.0.0.1:$p" DATABASE_URL="$db_url" \
    SMTP_URL="$smtp_url" ACTIVE_HOURS="$2" "$SERVER") >"$work/server$i.log" 2>&1 &
  pids[$i]=$!
  for _ in $(seq 1 200); do curl -sf "localhost:$p/healthz" >/dev/null && return; sleep 0.05; done
  echo "server $i did not start" >&2; cat "$work/server$i.log" >&2; exit 1
}
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}

# Held: a window that excludes the client's (America/Chicago) current hour.
held=$(python3 -c '
from datetime import datetime
from zoneinfo import ZoneInfo
h = datetime.now(ZoneInfo("America/Chicago")).hour
print(f"{(h + 2) % 24:02}:00-{(h + 3) % 24 or 24:02}:00")')
start 0 "$held"
curl -sf "localhost:$port/import_data/" >/dev/null
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"conversationId":1,"chat":{"payload":"Sure {{ username }}. Here is your code {{ discountCode }}","userId":24}}'
LUA
posted_at=$(date +%s.%N)
# wrk has no request count: slices of POSTs until N are stored.
posted=0
while [ "$posted" -lt "$n" ]; do
  wrk -t2 -c64 -d"${POST_SLICE:-2s}" -s "$work/post.lua" "http://127.0.0.1:$port/chat/" >"$work/post.out"
  posted=$(sql "SELECT count(*) FROM messages WHERE status = 'new'")
done
echo "posted $posted messages in $(python3 -c "import time; print(f'{time.time() - $posted_at:.1f}')") s"
stop_all
posted=$(sql "SELECT count(*) FROM messages WHERE status = 'new'")
sql "UPDATE messages SET send_at = now() - interval '1 second', next_attempt_at = NULL, \
     waiting_for = NULL WHERE status = 'new'"

already=$(sql "SELECT count(*) FROM messages WHERE status = 'sent'")  # the demo's own
started=$(date +%s.%N)
for i in $(seq 0 $((servers - 1))); do start "$i" 00:00-24:00; done
# The API meanwhile: GET /conversation/1/ at a fixed GET_RATE per second (an operator
# console's load, not a closed loop that becomes the load it measures), each latency from
# its scheduled start.
python3 benches/get_probe.py "http://127.0.0.1:$port/conversation/1/" "${GET_RATE:-200}" \
  "$work/drained" >"$work/get.out" &
probe_pid=$!
while [ "$(sql "SELECT EXISTS (SELECT 1 FROM messages WHERE status IN ('new', 'sending'))")" = t ]; do
  sleep 0.25
done
drained=$(date +%s.%N)
touch "$work/drained"
wait "$probe_pid"
get=$(python3 -c "
lines = open('$work/get.out').read().split()
ms = sorted(float(v) for v in lines if v != 'error')
errors = len(lines) - len(ms)
p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float('nan')
print(f'GET p99 during the drain {p99:.1f} ms ({len(lines)} at ${GET_RATE:-200}/s, {errors} failed)')")
rss=""
for i in $(seq 0 $((servers - 1))); do
  rss="$rss $(awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/${pids[$i]}/status") MB"
done
sent=$(( $(sql "SELECT count(*) FROM messages WHERE status = 'sent'") - already ))
sleep 2.2
received=$(tail -n1 "$work/sink.out" | awk '{ print $2 }')
stop_all
python3 -c "
n, s = $sent, $drained - $started
print(f'$servers server(s), {n} emails, $delay ms per email at the relay: {n / s:.0f} emails/s ({s:.1f} s); '
      f'peak RSS$rss; $get; the relay received $received')"
[ "$posted" -ge "$n" ] || { echo "only $posted of $n messages posted" >&2; exit 1; }
[ "$sent" = "$posted" ] || { echo "only $sent of $posted messages sent" >&2; exit 1; }
[ "$received" -ge "$sent" ] || { echo "the relay received $received of $sent emails" >&2; exit 1; }
psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS cartloop_burst"
