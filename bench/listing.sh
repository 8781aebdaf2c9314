#!/usr/bin/env bash
# The list route over many instances: a filter that matches nothing, and a full page of
# instances with 60 KB inputs, timed with curl against `weft serve`, with the server's
# peak RSS. Usage: WEFT=path/to/weft bench/listing.sh [INSTANCES]
set -euo pipefail
WEFT=${WEFT:-target/release/weft}
N=${1:-20000}
DIR=$(mktemp -d)
KEY=listing-bench-key-0123456789
PORT=$((20000 + RANDOM % 20000))
serve() { "$WEFT" serve --data-dir "$DIR/d" --addr 127.0.0.1:$PORT --key $KEY >"$DIR/serve.log" 2>&1 & echo $!; }
pid=$(serve); sleep 3; kill $pid; wait $pid 2>/dev/null || true
# N ended instances with 60 KB inputs, written straight into the schema `weft` made.
sqlite3 "$DIR/d/weft.db" "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<$N)
  INSERT INTO instances (id,name,status,input,output,created_at,updated_at)
  SELECT 'i'||x, 'N', 'Completed', '\"'||hex(randomblob(30000))||'\"', 'null', x, x FROM c;"
pid=$(serve); sleep 3
URL="http://127.0.0.1:$PORT/runtime/webhooks/durabletask/instances"
t() { curl -s -o /dev/null --max-time 300 -w "%{http_code} %{size_download} bytes %{time_total} s" "$URL?$1&code=$KEY" || true; }
echo "instances: $N"
echo "prefix matching nothing: $(t instanceIdPrefix=nope)"
echo "top=1000:                $(t top=1000)"
echo "top=1000, showInput=false: $(t 'top=1000&showInput=false')"
echo "peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2/1024 " MiB"}')"
kill $pid; wait $pid 2>/dev/null || true
rm -rf "$DIR"
