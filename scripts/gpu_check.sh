#!/usr/bin/env bash
# GPU check of specllama, in one call of under 10 minutes, on an NVIDIA GPU machine with no network.
#
# Before, on any machine with the project set up:   python3 scripts/gpu_pack.py
#   (writes .specllama-build/gpu/: the patched llama-cpp-python sdist trimmed to ~30 MB, and wheels)
# Then, from the repository root on the GPU machine:  scripts/gpu_check.sh
#
# 1. builds llama-cpp-python with CUDA for this GPU's architecture only (nvidia-smi's compute_cap),
#    with the flags scripts/install.py uses, into $SITE (the system's Python is left alone);
# 2. runs the GPU-mode unit tests (SPECLLAMA_TEST_NGL=99: every layer of the tiny models on the GPU,
#    kept sets and greedy outputs compared with the CPU's);
# 3. answers one request with `specllama run -ngl 99 -ngld 99` on a Qwen2.5-7B-shaped target and a
#    0.5B-shaped draft (RANDOM WEIGHTS, timing only: the real default models are too large to carry);
# 4. `specllama bench -ngl 99 -ngld 99` with those models at $LENGTHS for dense, specpc and speckv.
# Everything lands in $OUT: summary.txt (the step log), gpu.txt, build.log, tests.txt, run.json,
# bench-gpu.md/.json, bench.err.
#
# Environment: OUT (/tmp/gpu-check), BUDGET (seconds for the whole script, 560), LENGTHS (8K,28K),
# SITE (/tmp/specllama-site), PYTHON (python3), SKIP_BUILD=1 (use the llama_cpp that $PYTHON already
# imports, e.g. to try the script on a CPU machine), SKIP_BENCH=1, SHAPED=tiny (tiny models instead of
# the shaped ones: a dry run of the steps).
set -u
cd "$(dirname "$0")/.."
T0=$(date +%s)
OUT=${OUT:-/tmp/gpu-check}; PACK=${PACK:-.specllama-build/gpu}; SITE=${SITE:-/tmp/specllama-site}
PY=${PYTHON:-python3}; LENGTHS=${LENGTHS:-8K,28K}; BUDGET=${BUDGET:-560}
mkdir -p "$OUT" "$SITE"
export PYTHONUNBUFFERED=1 SPECLLAMA_CACHE=${SPECLLAMA_CACHE:-/tmp/specllama-gpu-cache}
log() { echo "[gpu_check $(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/summary.txt" >&2; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
: > "$OUT/summary.txt"

if nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader > "$OUT/gpu.txt" 2>&1; then
  log "GPU: $(head -1 "$OUT/gpu.txt")"
else
  log "nvidia-smi failed: $(head -1 "$OUT/gpu.txt")"
fi
ARCH=${CMAKE_CUDA_ARCHITECTURES:-$(head -1 "$OUT/gpu.txt" | awk -F', ' '{print $4}' | tr -d '.')}
[[ "$ARCH" =~ ^[0-9]+$ ]] || ARCH=90

[ -d "$PACK" ] || { log "missing $PACK: run python3 scripts/gpu_pack.py first and carry it"; exit 2; }
"$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check --upgrade \
  --target "$SITE" "$PACK"/whl/*.whl > "$OUT/wheels.log" 2>&1 || { log "wheel install failed"; tail -5 "$OUT/wheels.log"; exit 1; }
export PYTHONPATH="$PWD:$SITE"  # the source tree as it is (registry falls back to models/manifest.toml)

if [ -z "${SKIP_BUILD:-}" ]; then
  rm -rf /tmp/specllama-lcp && mkdir -p /tmp/specllama-lcp && tar xzf "$PACK/lcp.tar.gz" -C /tmp/specllama-lcp
  CARGS=$(CMAKE_CUDA_ARCHITECTURES=$ARCH "$PY" -c "import sys; sys.path.insert(0, 'scripts'); import install; print(install.cmake_args(True))")
  log "building llama-cpp-python with CUDA for sm_$ARCH ($CARGS)"
  CMAKE_ARGS="$CARGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) FORCE_CMAKE=1 timeout $(( $(left) - 200 )) \
    "$PY" -m pip install --no-build-isolation --no-deps --no-index --no-cache-dir --upgrade \
    --target "$SITE" /tmp/specllama-lcp/lcp > "$OUT/build.log" 2>&1 \
    || { log "build failed (or ran out of time)"; tail -25 "$OUT/build.log"; exit 1; }
  "$PY" -c "import sys, json, time; sys.path.insert(0, 'scripts'); import install
p = [x.name for x in install.patch_series()]
open(sys.argv[1], 'w').write(json.dumps({'key': 'gpu_check', 'cmake_args': sys.argv[2], 'cuda': True, 'patches': p,
    'built': time.strftime('%Y-%m-%d %H:%M:%S')}))" "$SITE/llama_cpp/.specllama-build.json" "$CARGS"
  log "built"
fi
"$PY" -c "
import llama_cpp.llama_cpp as C
from specllama.engine import lib
print('llama_cpp from', C.__file__)
print('backends', lib.backend_registry(), 'gpu offload', bool(C.llama_supports_gpu_offload()))
print('note', lib.gpu_offload_note())" 2>&1 | tee -a "$OUT/summary.txt"

log "GPU-mode unit tests ($(left) s left)"
SPECLLAMA_TEST_NGL=99 timeout $(( $(left) > 260 ? 180 : $(left) - 80 )) "$PY" -X faulthandler -m pytest -q -x \
  -p no:cacheprovider tests/unit/test_gpu.py tests/unit/test_engine.py tests/unit/test_capture.py \
  tests/unit/test_kvstate.py tests/unit/test_pipeline.py tests/unit/test_sparse_draft.py > "$OUT/tests.txt" 2>&1
log "tests rc=$? : $(tail -1 "$OUT/tests.txt")"

if [ "${SHAPED:-}" = tiny ]; then
  "$PY" -c "
import sys; sys.path.insert(0, '.')
from models.synth import TinySpec, write_tiny
write_tiny('/tmp/gc-target.gguf', TinySpec()); write_tiny('/tmp/gc-draft.gguf', TinySpec(seed=1, n_layer=3))"
  TARGET=/tmp/gc-target.gguf; DRAFT=/tmp/gc-draft.gguf
else
  log "writing the shaped models (random weights, timing only)"
  timeout 240 "$PY" - > "$OUT/shaped.log" 2>&1 <<'PY'
import os, sys
sys.path.insert(0, ".")
from models.shaped import ShapedSpec, write_shaped
v = "/tmp/specllama-lcp/lcp/vendor/llama.cpp/models/ggml-vocab-qwen2.gguf"
if not os.path.exists(v):
    import tarfile
    with tarfile.open(".specllama-build/gpu/lcp.tar.gz") as tf:
        tf.extract("lcp/vendor/llama.cpp/models/ggml-vocab-qwen2.gguf", "/tmp/specllama-lcp")
write_shaped("/tmp/gc-target.gguf", v, ShapedSpec())
write_shaped("/tmp/gc-draft.gguf", v, ShapedSpec(name="qwen2.5-0.5b-shaped", n_layer=24, n_embd=896, n_head=14,
                                                 n_head_kv=2, n_ff=4864, quant="q4_0"))
print("shaped ok", os.path.getsize("/tmp/gc-target.gguf") >> 20, os.path.getsize("/tmp/gc-draft.gguf") >> 20, "MiB")
PY
  log "$(tail -1 "$OUT/shaped.log")"
  TARGET=/tmp/gc-target.gguf; DRAFT=/tmp/gc-draft.gguf
fi

log "specllama run -ngl 99 -ngld 99"
WORDS=3200; [ "${SHAPED:-}" = tiny ] && WORDS=600  # tiny models read 4,096 tokens of their own
"$PY" -m specllama.eval.haystack --words $WORDS --depth 0.4 > /tmp/gc-doc.txt 2>> "$OUT/run.err"
timeout 120 "$PY" -m specllama run -m "$TARGET" -md "$DRAFT" -ngl 99 -ngld 99 --method specpc --keep 0.25 -n 16 \
  -f /tmp/gc-doc.txt --question "What is the special magic number for the blue falcon?" --json \
  > "$OUT/run.json" 2>> "$OUT/run.err"
log "run rc=$? ($(wc -c < "$OUT/run.json") bytes of JSON; random weights answer nonsense)"

if [ -z "${SKIP_BENCH:-}" ]; then
  log "bench at $LENGTHS ($(left) s left)"
  timeout $(( $(left) - 15 )) "$PY" -m specllama bench -m "$TARGET" -md "$DRAFT" -ngl 99 -ngld 99 -t "$(nproc)" \
    --lengths "$LENGTHS" --keep 0.2 --methods specpc,speckv -r 1 -n 64 --max-busy 1.0 --idle-wait 0 \
    --save "$OUT/bench-gpu.json" > "$OUT/bench-gpu.md" 2> "$OUT/bench.err"
  log "bench rc=$?"
  cat "$OUT/bench-gpu.md"
fi
log "done"
