#!/usr/bin/env bash
# bench/run.sh: submit and poll throughput of imagegate against nginx serving a static JSON
# file of the same size, in the same run, on loopback. Prints a Markdown table.
#   usage: bench/run.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
BIN=build/imagegate
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "needs wrk and nginx (make bench installs them)" >&2; exit 1; }
OUT=$(mktemp -d /tmp/igbench.XXXXXX)
trap 'kill $(cat $OUT/*.pid 2>/dev/null) 2>/dev/null || true; wait 2>/dev/null || true' EXIT

"$BIN" serve --listen 127.0.0.1:0 --data "$OUT/data" --log-level warn ${IG_ARGS:-} >"$OUT/ig.out" 2>"$OUT/ig.err" &
echo $! >"$OUT/ig.pid"
for _ in $(seq 50); do grep -q "listening on port" "$OUT/ig.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/listening on port //p' "$OUT/ig.out")
export IG_KEY=$(cat "$OUT/data/first-key.txt")
ID=$(curl -s -H "Authorization: Bearer $IG_KEY" "http://127.0.0.1:$PORT/api/v1/images/generations" \
      -d '{"model":"gemini-2.5-flash-image-preview","prompt":"bench"}' | sed 's/.*"id":"\([^"]*\)".*/\1/')
for _ in $(seq 100); do
  curl -s -H "Authorization: Bearer $IG_KEY" "http://127.0.0.1:$PORT/api/v1/tasks/$ID" >"$OUT/poll.json"
  grep -q completed "$OUT/poll.json" && break; sleep 0.1
done
BYTES=$(stat -c %s "$OUT/poll.json")

# nginx: the same bytes as a static file, one worker (the reference DESIGN.md measured).
mkdir -p "$OUT/www"; cp "$OUT/poll.json" "$OUT/www/task.json"
NPORT=$((PORT + 1))
cat >"$OUT/nginx.conf" <<CONF
worker_processes 1;
pid $OUT/nginx.pid;
error_log $OUT/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  server { listen 127.0.0.1:$NPORT; root $OUT/www; }
}
CONF
nginx -c "$OUT/nginx.conf"
sleep 0.5

run() { # name url script
  wrk -t2 -c64 -d"${DUR}s" --latency ${3:+-s "$3"} "$2" >"$OUT/$1.wrk" 2>&1
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/$1.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$OUT/$1.wrk")
  echo "$rps $p99"
}
# nginx and poll alternate, three rounds each, so a noisy neighbour hits both alike; the
# medians are reported.
median() { sort -g | sed -n 2p; }
for r in 1 2 3; do
  run nginx "http://127.0.0.1:$NPORT/task.json" >>"$OUT/nginx.runs"
  run poll "http://127.0.0.1:$PORT/api/v1/tasks/$ID" bench/poll.lua >>"$OUT/poll.runs"
done
NG_RPS=$(awk '{print $1}' "$OUT/nginx.runs" | median)
NG_P99=$(awk -v r="$NG_RPS" '$1 == r {print $2}' "$OUT/nginx.runs" | head -1)
PO_RPS=$(awk '{print $1}' "$OUT/poll.runs" | median)
PO_P99=$(awk -v r="$PO_RPS" '$1 == r {print $2}' "$OUT/poll.runs" | head -1)
read -r SU_RPS SU_P99 < <(run submit "http://127.0.0.1:$PORT/api/v1/images/generations" bench/submit.lua)
NON2XX=$(grep -c "Non-2xx" "$OUT/submit.wrk" || true)
ROWS=$(sqlite3 "$OUT/data/imagegate.db" "select count(*) from tasks" 2>/dev/null || echo "?")
RATIO=$(awk -v a="$PO_RPS" -v b="$NG_RPS" 'BEGIN {printf "%.2f", a / b}')
cat <<TABLE
| run ($DUR s each, wrk -t2 -c64, loopback, $(nproc) cores; nginx and poll: median of 3 alternating runs) | req/s | p99 |
| --- | --- | --- |
| nginx 1 worker, static $BYTES-byte JSON | $NG_RPS | $NG_P99 |
| imagegate poll (key check + store read + JSON, $BYTES bytes) | $PO_RPS | $PO_P99 |
| imagegate submit (durable: committed before the reply) | $SU_RPS | $SU_P99 |

poll / nginx = $RATIO (runs: nginx $(tr '\n' ' ' <"$OUT/nginx.runs"); poll $(tr '\n' ' ' <"$OUT/poll.runs"))
tasks stored after the run: $ROWS; submit responses not 2xx: $NON2XX
TABLE
