#!/usr/bin/env bash
# Time one ~4K-token question against a real llama-server on loopback (the default target), sent
# directly (specllama --method dense forwards the whole prompt) and compressed by specllama's local
# draft (SpecPC, budget 512). llama-server restarts before each so its prompt cache cannot help.
#   LLAMA_SERVER=/path/to/llama-server bash scripts/upstream_vs_llama_server.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LS=${LLAMA_SERVER:-$(command -v llama-server || true)}
[ -x "$LS" ] || { echo "set LLAMA_SERVER to a llama-server binary" >&2; exit 2; }
PORT=${PORT:-8181}
TARGET=$(python3 -m specllama models path qwen2.5-coder-1.5b-instruct-q4_k_m)
DOC=$(mktemp); ERR=$(mktemp); SRV=
trap 'rm -f "$DOC" "$ERR"; [ -n "$SRV" ] && kill $SRV 2>/dev/null || true' EXIT
python3 -m specllama.eval.haystack --words 3200 --depth 0.4 > "$DOC"
Q="What is the special magic number for the blue falcon? Answer with the number only."
start() {
  "$LS" -m "$TARGET" -t 2 -c 8192 --host 127.0.0.1 --port $PORT > /dev/null 2>&1 & SRV=$!
  for _ in $(seq 120); do curl -sf http://127.0.0.1:$PORT/health > /dev/null && return; sleep 1; done
  echo "llama-server did not start" >&2; exit 1
}
echo "llama-server $("$LS" --version 2>&1 | grep -m1 version), target $(basename "$TARGET"), -t 2, ~4K-token needle document"
echo
echo "| route | answer | wall s | specllama summary (stderr) |"
echo "|---|---|---:|---|"
for route in "dense" "specpc --budget 512"; do
  start
  t0=$(date +%s.%N)
  out=$(python3 -m specllama run --upstream http://127.0.0.1:$PORT/v1 -t 2 -n 16 --method $route \
        -f "$DOC" --question "$Q" 2> "$ERR")
  t1=$(date +%s.%N)
  echo "| $route | $(echo $out | head -c 40) | $(python3 -c "print(f'{$t1-$t0:.2f}')") | $(tail -1 "$ERR" | sed 's/ | / · /g') |"
  kill $SRV; wait $SRV 2>/dev/null || true
done
