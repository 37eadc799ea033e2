"""Each patch in patches/ has a test here that fails on a llama.cpp built without it.

The tests run llama.cpp in a child process, because a patch may read its switch once per process.
A llama-cpp-python not built by ``scripts/install.py`` (no build stamp) skips them, unless
``SPECLLAMA_REQUIRE_MODELS=1`` (``make test``, CI), where an unpatched build must fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

GAP_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from specllama.engine.context import Context, ContextConfig
    from specllama.engine.model import Model
    from specllama.errors import SpecllamaError

    with Model(sys.argv[1]) as m, Context(m, ContextConfig(n_ctx=128, n_threads=1)) as ctx:
        ctx.decode(np.arange(10, 20, dtype=np.int32))            # positions 0..9
        try:
            ctx.decode(np.array([30, 31]), np.array([15, 17]))  # jump to 15, then a hole at 16
        except SpecllamaError as e:
            print("refused:", e)
            sys.exit(3)
        print("pos_max", ctx.pos_max())
""")


def _series() -> list[str]:
    return [ln.strip() for ln in (ROOT / "patches" / "series").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


def _require_built():
    from specllama.engine import lib

    if not lib.build_info() and os.environ.get("SPECLLAMA_REQUIRE_MODELS") != "1":
        pytest.skip("llama-cpp-python was not built by scripts/install.py")


def _run_gap(tiny_path: str, allow: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLAMA_ALLOW_POS_GAPS": allow}
    return subprocess.run([sys.executable, "-c", GAP_SCRIPT, tiny_path], env=env, capture_output=True,
                          text=True, timeout=120)


def test_every_patch_in_series_exists_and_is_recorded_by_the_build():
    from specllama.engine import lib

    names = _series()
    assert names, "patches/series is empty"
    for n in names:
        assert (ROOT / "patches" / n).is_file(), n
    _require_built()
    assert lib.build_info().get("patches") == names, "the installed build lacks patches: run make install"


def test_0001_position_gaps_accepted_when_switched_on(tiny_path):
    _require_built()
    p = _run_gap(tiny_path, "1")
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    assert "pos_max 17" in p.stdout


def test_0001_upstream_check_kept_when_switched_off(tiny_path):
    """The patch is opt-in: without the switch llama.cpp still refuses position gaps."""
    p = _run_gap(tiny_path, "0")
    assert p.returncode == 3, p.stdout + p.stderr[-2000:]


def test_local_attention_patch_exports_its_function():
    """patches/0002: the build exports llama_set_local_attn (tests/unit/test_sparse_draft.py checks
    what it does)."""
    from specllama.engine import lib

    _require_built()
    assert "0002-local-attention-mask.patch" in lib.build_info().get("patches", [])
    assert lib.llama_set_local_attn is not None
