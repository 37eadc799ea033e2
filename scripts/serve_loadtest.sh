#!/usr/bin/env bash
# The bounded load test of `specllama serve` on loopback with the default pair: 8 concurrent clients,
# 50 streamed chat completions (a ~400-token synthetic document and a question each, 16 tokens out).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8182}
python3 -m specllama serve -t 2 --port $PORT --quiet 2> /tmp/serve-loadtest.err & SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf http://127.0.0.1:$PORT/health > /dev/null && break; sleep 1; done
echo "specllama serve, default pair, -t 2, default method (specpc); 8 clients, 50 requests"
echo
echo '```'
rc=0
python3 -m specllama.serve.loadtest --url http://127.0.0.1:$PORT/v1 --clients 8 --requests 50 \
  --words 300 --max-tokens 16 --stream --deadline 900 || rc=$?
echo '```'
kill -INT $SRV; src=0; wait $SRV || src=$?; echo "server exit code after SIGINT: $src"
exit $rc
