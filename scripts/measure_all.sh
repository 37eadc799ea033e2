#!/usr/bin/env bash
# Re-measure every number in the README on this machine, one command after another (each timing run
# needs the machine to itself). Results go to docs/results/; about 90 minutes on 2 cores.
#   bash scripts/measure_all.sh [step ...]    steps: bench levers ubatch speckv speckv256 routes chat eval evaldraft serve upstream needle shaped
# serve/upstream need the `serve` extra; upstream needs a llama-server binary (LLAMA_SERVER=path).
set -uo pipefail
cd "$(dirname "$0")/.."
R=docs/results
mkdir -p "$R"
SL="python3 -m specllama"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(bench levers ubatch speckv speckv256 routes chat eval evaldraft serve upstream needle shaped)
for s in "${steps[@]}"; do
  echo "== $s $(date -u +%FT%TZ)" >&2
  case $s in
    bench)  $SL bench -t 2 --keep 0.2 --methods specpc --exact-draft --lengths 2K,4K,8K,16K,32752 \
              --probe-lengths 8K -r 1 -n 16 --save $R/bench-default.json --plot $R/bench-default.png \
              > $R/bench-default.md ;;
    levers) python3 scripts/draft_levers.py --length 8192 --depths 0.1,0.5,0.9 -t 2 \
              --variants exact,w256,w512,w1024,w2048,l12,l16,l20,q4_0,q8_0,w1024+l16,w512+l12,w1024+l16+q4_0 \
              --out $R/draft-levers-8k.md ;;
    ubatch) for ub in 128 256 512 1024 2048; do
              python3 scripts/draft_levers.py --length 8192 --depths 0.5 -t 2 -b "$ub" -ub "$ub" \
                --variants exact,w512+l16 --out $R/draft-ubatch-$ub.md; done ;;
    speckv) $SL bench -t 2 --budget 512 --methods speckv,speckvpc --lengths 8K -r 1 -n 64 --no-probe \
              --save $R/bench-speckv.json > $R/bench-speckv.md ;;
    speckv256) $SL bench -t 2 --budget 512 --methods speckv --lengths 8K -r 1 -n 256 --no-probe \
              --save $R/bench-speckv-n256.json > $R/bench-speckv-n256.md ;;
    shaped) $SL bench --shaped-target -t 2 --keep 0.2 --methods specpc --exact-draft --lengths 8K -r 1 -n 8 --no-probe \
              --save $R/bench-7b-shaped.json > $R/bench-7b-shaped.md ;;
    routes) python3 scripts/compare_routes.py --length 4096 --limit 2 -t 2 > $R/routes.md ;;
    chat)   python3 scripts/chat_reuse.py -t 2 > $R/chat-reuse.md ;;
    eval)   $SL eval --preset quick -t 2 --out $R/eval-quick > $R/eval-quick.md
            /usr/bin/time -f "second run (cache reuse): %e s" $SL eval --preset quick -t 2 \
              --out $R/eval-quick > $R/eval-quick-rerun.md 2> $R/eval-quick-rerun.log ;;
    evaldraft) $SL eval --preset quick --methods specpc --exact-draft -t 2 --out $R/eval-quick-draft \
              > $R/eval-quick-draft.md
            $SL eval --out $R/eval-quick-draft --compare specpc@512 specpc~exact@512 > $R/eval-quick-draft-compare.md
            $SL eval --out $R/eval-quick-draft --compare specpc@1024 specpc~exact@1024 >> $R/eval-quick-draft-compare.md ;;
    serve)  bash scripts/serve_loadtest.sh > $R/serve-loadtest.md ;;
    upstream) bash scripts/upstream_vs_llama_server.sh > $R/upstream.md ;;
    needle) bash scripts/needle_methods.sh > $R/needle-methods.md ;;
    *) echo "unknown step $s" >&2; exit 2 ;;
  esac
  rc=$?
  echo "== $s done $(date -u +%FT%TZ) rc=$rc" >&2
done
