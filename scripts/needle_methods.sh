#!/usr/bin/env bash
# Every method on the ~3K-token needle document (the integration tests' test), budget 512, through
# `specllama run`: its answer and its stderr summary line, as a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
DOC=$(mktemp); trap 'rm -f "$DOC" /tmp/needle.err' EXIT
python3 -m specllama.eval.haystack --words 2300 --depth 0.4 > "$DOC"
Q="What is the special magic number for the blue falcon? Answer with the number only."
echo "needle: 7319284 at 40% depth of a ~3K-token essay; --budget 512 -n 16 -t 2"
echo
echo "| method | answer | correct | summary (stderr) |"
echo "|---|---|---|---|"
for m in ${METHODS:-dense specpc speckv speckvpc snapkv streaming truncate random}; do
  out=$(python3 -m specllama run --method $m --budget 512 -n 16 -t 2 -s 1 -f "$DOC" --question "$Q" 2> /tmp/needle.err)
  ok=no; [[ "$out" == *7319284* ]] && ok=yes
  echo "| $m | $(echo $out | tr '|' '/' | head -c 40) | $ok | $(grep -v '^\[' /tmp/needle.err | tail -1 | sed 's/ | / · /g') |"
done
