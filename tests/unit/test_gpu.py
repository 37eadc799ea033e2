"""GPU offload: the -ngl warning on builds that cannot offload, and CPU vs GPU agreement.

Run with ``SPECLLAMA_TEST_NGL=99`` on a GPU build (scripts/gpu_check.sh does) to put every layer of the
tiny models on the GPU: the agreement tests then compare the GPU's kept sets and greedy outputs with the
CPU's, for SpecPC on both attention routes, SpecKV (whose kept KV cells move into a small context on
the GPU) and dense generation. On a CPU build -ngl changes nothing and they pass trivially.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import TEST_NGL, cpu_only

import specllama
from specllama.engine import lib

NGL = TEST_NGL or 99
DOC = " ".join(["the river and the mountain were green in the night"] * 30
               + ["the secret code is blue falcon 7319"] + ["we go back to the house again"] * 30)
QUESTION = "What is the secret code?"
gpu_mode = pytest.mark.skipif(not TEST_NGL, reason="GPU mode is off (set SPECLLAMA_TEST_NGL=99 on a GPU build)")


def _run(tp, dp, ngl, method, route="qk"):
    with specllama.Session(tp, dp, threads=2, n_gpu_layers=ngl, n_gpu_layers_draft=ngl) as s:
        s.rt.attn_route = route
        res = s.generate(DOC, QUESTION, method=method, budget=96, n_predict=8)
        return res.kept, res.tokens, res.method


def _both(tp, dp, method, route="qk"):
    with cpu_only():
        cpu = _run(tp, dp, 0, method, route)
    return cpu, _run(tp, dp, NGL, method, route)


@gpu_mode
@pytest.mark.parametrize("method,route", [("specpc", "qk"), ("specpc", "kq"), ("speckv", "qk"),
                                          ("speckv", "kq"), ("dense", "qk")])
def test_gpu_agrees_with_cpu(tiny_path, tiny_draft_path, method, route, monkeypatch):
    monkeypatch.setenv("SPECLLAMA_GPU_WARNED", "1")
    (k0, t0, m0), (k1, t1, m1) = _both(tiny_path, tiny_draft_path, method, route)
    assert m0 == m1 == method
    # the kept sets are top-k choices over float scores: GPU kernels may break near-ties differently
    jaccard = len(np.intersect1d(k0, k1)) / max(1, len(np.union1d(k0, k1)))
    assert jaccard >= 0.9, (method, route, jaccard)
    if jaccard == 1.0:
        assert list(t0) == list(t1)  # same kept prompt: same greedy answer


@gpu_mode
def test_gpu_agrees_with_cpu_on_sliding_window_layers(tiny_dir, monkeypatch):
    from models.synth import TinySpec, write_tiny

    monkeypatch.setenv("SPECLLAMA_GPU_WARNED", "1")
    g = write_tiny(tiny_dir / "tiny-gemma3-gpu.gguf", TinySpec(arch="gemma3", n_layer=6, sliding_window=64))
    (k0, t0, _), (k1, t1, _) = _both(g, g, "specpc", "kq")
    assert len(np.intersect1d(k0, k1)) / max(1, len(np.union1d(k0, k1))) >= 0.9


def test_offload_note_names_the_backend_without_a_device():
    msg = lib.gpu_offload_note(regs=[("CUDA", 0), ("CPU", 1)], supported=False)
    assert "CUDA" in msg and "no CUDA device is visible" in msg and "runs on the CPU" in msg
    msg = lib.gpu_offload_note(regs=[("CPU", 1), ("BLAS", 1)], supported=False)
    assert "no GPU backend" in msg and "--cuda" in msg
    assert lib.gpu_offload_note(regs=[("CUDA", 1), ("CPU", 1)], supported=True) is None


@pytest.mark.skipif(bool(lib.C.llama_supports_gpu_offload()), reason="this build offloads to a GPU")
def test_ngl_without_a_gpu_warns_once(tiny_path, tiny_draft_path, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text(DOC)
    env = {k: v for k, v in __import__("os").environ.items() if k != "SPECLLAMA_GPU_WARNED"}
    p = subprocess.run([sys.executable, "-m", "specllama", "run", "-m", tiny_path, "-md", tiny_draft_path,
                        "-ngl", "99", "-ngld", "99", "-f", str(doc), "--question", QUESTION, "-n", "4",
                        "--budget", "96"], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    warnings = [ln for ln in p.stderr.splitlines() if "-ngl/-ngld" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("specllama: warning:"), p.stderr
