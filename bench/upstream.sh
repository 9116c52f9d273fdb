#!/usr/bin/env bash
# bench/upstream.sh: imagegate in front of a Gemini-speaking upstream.
#  (a) added latency: a task through imagegate, from sending the submit to reading the completed
#      poll, against the same call made directly to the upstream, p50/p99 (bench/latency.mjs);
#  (b) memory: N tasks in flight against an upstream that answers after 10 s: RSS and threads.
# The upstream is nginx serving precomputed bytes (static file; echo_sleep for the slow one),
# so it is never the bottleneck. Loopback only.
#   usage: bench/upstream.sh [tasks for (a), default 300] [N list for (b), default "1000 10000"]
set -euo pipefail
cd "$(dirname "$0")/.."
NA=${1:-300}
NLIST=${2:-"1000 10000"}
BIN=build/imagegate
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
OUT=$(mktemp -d /tmp/igup.XXXXXX)
chmod 755 "$OUT" # nginx's workers read the precomputed answers from here
trap 'kill $(cat $OUT/*.pid 2>/dev/null) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
ulimit -n "$(ulimit -Hn)"

# A real 1024x1024 PNG from the offline provider, as Gemini would return it.
"$BIN" serve --listen 127.0.0.1:0 --data "$OUT/seed" --log-level warn >"$OUT/seed.out" 2>/dev/null &
echo $! >"$OUT/seed.pid"
for _ in $(seq 50); do grep -q "listening on port" "$OUT/seed.out" 2>/dev/null && break; sleep 0.1; done
SP=$(sed -n 's/listening on port //p' "$OUT/seed.out")
K=$(cat "$OUT/seed/first-key.txt")
ID=$(curl -s -H "Authorization: Bearer $K" "http://127.0.0.1:$SP/api/v1/images/generations" \
      -d '{"model":"gemini-2.5-flash-image","prompt":"bench"}' | sed 's/.*"id":"task_\([^"]*\)".*/\1/')
sleep 1
curl -s -o "$OUT/img.png" "http://127.0.0.1:$SP/media/tasks/$ID/0.png"
kill "$(cat "$OUT/seed.pid")"; rm "$OUT/seed.pid"
B64=$(base64 -w0 "$OUT/img.png")
mkdir -p "$OUT/www/v1beta/models"
printf '{"candidates":[{"content":{"role":"model","parts":[{"inlineData":{"mimeType":"image/png","data":"%s"}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1290,"totalTokenCount":1295,"candidatesTokensDetails":[{"modality":"IMAGE","tokenCount":1290}]},"modelVersion":"gemini-2.5-flash-image","responseId":"bench"}' \
  "$B64" >"$OUT/www/v1beta/models/gemini-2.5-flash-image:generateContent"
RESP_BYTES=$(stat -c %s "$OUT/www/v1beta/models/gemini-2.5-flash-image:generateContent")

NPORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
cat >"$OUT/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
worker_rlimit_nofile 19000;
pid $OUT/nginx.pid;
error_log $OUT/nginx.err;
events { worker_connections 18000; }
http {
  access_log off;
  default_type application/json;
  client_max_body_size 64m;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$NPORT backlog=65535;
    root $OUT/www;
    location /v1beta/ { error_page 405 =200 \$uri; }
    location /slow/v1beta/ {
      echo_read_request_body;
      echo_sleep 10;
      echo '{"candidates":[{"content":{"parts":[{"text":"late"}]},"finishReason":"STOP"}]}';
    }
  }
}
CONF
nginx -c "$OUT/nginx.conf"
sleep 0.3
UP="http://127.0.0.1:$NPORT"

pct() { sort -g | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100+0.5); if(i<1)i=1; printf "%.2f", a[i]}'; }

# (a) the direct call and a task through imagegate, alternating, from one node client with
#     keep-alive connections (bench/latency.mjs): the task's time runs from sending the submit
#     to reading the poll that says completed (polls back to back on one connection).
GEMINI_API_KEY=bench-key GEMINI_BASE_URL="$UP" "$BIN" serve --listen 127.0.0.1:0 --data "$OUT/a" \
  --log-level warn >"$OUT/a.out" 2>"$OUT/a.err" &
echo $! >"$OUT/a.pid"
for _ in $(seq 50); do grep -q "listening on port" "$OUT/a.out" 2>/dev/null && break; sleep 0.1; done
AP=$(sed -n 's/listening on port //p' "$OUT/a.out")
K=$(cat "$OUT/a/first-key.txt")
LAT=$(node bench/latency.mjs "$UP/v1beta/models/gemini-2.5-flash-image:generateContent" \
      "http://127.0.0.1:$AP" "$K" "$NA")
sqlite3 "$OUT/a/imagegate.db" "select finished_ms - created_ms from tasks where state='succeeded'" >"$OUT/gw.ms"
FAILED=$(sqlite3 "$OUT/a/imagegate.db" "select count(*) from tasks where state!='succeeded'")
kill "$(cat "$OUT/a.pid")"; rm "$OUT/a.pid"

j() { node -e "const o=JSON.parse(process.argv[1]); console.log($2)" "$LAT"; }
D50=$(j "$LAT" o.direct.p50); D99=$(j "$LAT" o.direct.p99)
T50=$(j "$LAT" o.task.p50); T99=$(j "$LAT" o.task.p99)
S50=$(pct 50 <"$OUT/gw.ms"); S99=$(pct 99 <"$OUT/gw.ms")
Y50=$(j "$LAT" o.sync.p50); Y99=$(j "$LAT" o.sync.p99)
echo "## (a) added latency, $NA tasks one at a time, upstream answer $RESP_BYTES bytes (1024x1024 PNG)"
echo
echo "| path | p50 ms | p99 ms |"
echo "| --- | --- | --- |"
echo "| direct call to the upstream (node, keep-alive) | $D50 | $D99 |"
echo "| task through imagegate: submit sent -> poll reads completed (same client) | $T50 | $T99 |"
echo "| **added by imagegate** | **$(awk -v a="$T50" -v b="$D50" 'BEGIN{printf "%.2f", a-b}')** | $(awk -v a="$T99" -v b="$D99" 'BEGIN{printf "%.2f", a-b}') |"
echo "| (the store's own record: created -> finished, whole ms) | $S50 | $S99 |"
echo "| the same call to imagegate's Gemini API (synchronous: stored task, reply with the image) | $Y50 | $Y99 |"
echo "| **added by imagegate, synchronous** | **$(awk -v a="$Y50" -v b="$D50" 'BEGIN{printf "%.2f", a-b}')** | $(awk -v a="$Y99" -v b="$D99" 'BEGIN{printf "%.2f", a-b}') |"
echo
echo "tasks not succeeded: $FAILED; polls per task: $(j "$LAT" o.polls_per_task)"
echo

# (b) memory with N tasks waiting on a 10 s upstream
echo "## (b) tasks in flight against an upstream that answers after 10 s"
echo
echo "| N submitted (accepted) | RSS before | RSS with them waiting | per task | threads | upstream connections open |"
echo "| --- | --- | --- | --- | --- | --- |"
for N in $NLIST; do
  GEMINI_API_KEY=bench-key GEMINI_BASE_URL="$UP/slow" "$BIN" serve --listen 127.0.0.1:0 --data "$OUT/b$N" \
    --log-level warn --max-inflight $((N + 100)) --task-timeout 600 --upstream-max-attempts 1 \
    >"$OUT/b.out" 2>"$OUT/b.err" &
  PID=$!; echo $PID >"$OUT/b.pid"
  for _ in $(seq 50); do grep -q "listening on port" "$OUT/b.out" 2>/dev/null && break; sleep 0.1; done
  BP=$(sed -n 's/listening on port //p' "$OUT/b.out")
  K=$(cat "$OUT/b$N/first-key.txt")
  sleep 0.5
  R0=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  ACC=$(node bench/submit-n.mjs "http://127.0.0.1:$BP/api/v1/images/generations" "$K" "$N" 64)
  # wait until N upstream connections are open (or 20 s)
  for _ in $(seq 200); do
    C=$(ss -tn state established "( dport = :$NPORT )" 2>/dev/null | tail -n +2 | wc -l)
    [ "$C" -ge "$N" ] && break; sleep 0.1
  done
  sleep 1
  C=$(ss -tn state established "( dport = :$NPORT )" 2>/dev/null | tail -n +2 | wc -l)
  R1=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  TH=$(awk '/Threads/ {print $2}' /proc/$PID/status)
  echo "| $N ($ACC) | $((R0 / 1024)) MiB | $((R1 / 1024)) MiB | $(awk -v a="$R1" -v b="$R0" -v n="$C" 'BEGIN{ if (n>0) printf "%.1f KB", (a-b)*1.024/n; else print "?" }') | $TH | $C |"
  kill "$PID"; wait "$PID" 2>/dev/null || true; rm -f "$OUT/b.pid"
done
