"""Shared fixtures: tiny generated GGUFs for unit tests, the real default pair for integration."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.synth import TinySpec, write_tiny  # noqa: E402

# GPU mode: SPECLLAMA_TEST_NGL=99 offloads every layer of every model the tests load (target and
# draft) unless a test asks for the CPU with ``cpu_only()``; tests/unit/test_gpu.py then compares the
# GPU's kept sets and greedy outputs with the CPU's. Unset or 0: everything runs on the CPU.
TEST_NGL = int(os.environ.get("SPECLLAMA_TEST_NGL") or 0)
_FORCE_CPU = [False]


class cpu_only:  # noqa: N801 - used as ``with cpu_only():``
    """Load models on the CPU inside this block, whatever SPECLLAMA_TEST_NGL says."""

    def __enter__(self):
        _FORCE_CPU.append(True)

    def __exit__(self, *exc):
        _FORCE_CPU.pop()


@pytest.fixture(scope="session", autouse=True)
def _gpu_mode():
    if not TEST_NGL:
        yield
        return
    from specllama.engine import model as model_mod

    orig = model_mod.Model.__init__

    def init(self, path, n_gpu_layers=0, role="model", **kw):
        orig(self, path, 0 if _FORCE_CPU[-1] else (n_gpu_layers or TEST_NGL), role, **kw)

    model_mod.Model.__init__ = init
    yield
    model_mod.Model.__init__ = orig


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_path(tiny_dir) -> str:
    """A 2-layer, 64-wide LLaMA with GQA (4 query heads, 2 KV heads) and a ChatML template."""
    return write_tiny(tiny_dir / "tiny.gguf", TinySpec())


@pytest.fixture(scope="session")
def tiny_draft_path(tiny_dir) -> str:
    """Same tokenizer as ``tiny_path``, other weights: a stand-in draft."""
    return write_tiny(tiny_dir / "tiny-draft.gguf", TinySpec(seed=1, n_layer=3))


@pytest.fixture(scope="session")
def tiny_other_vocab_path(tiny_dir) -> str:
    """A tiny model whose vocabulary differs from ``tiny_path``'s."""
    return write_tiny(tiny_dir / "tiny-other-vocab.gguf", TinySpec(vocab_variant=1))


@pytest.fixture(scope="session")
def tiny_no_template_path(tiny_dir) -> str:
    return write_tiny(tiny_dir / "tiny-no-template.gguf", TinySpec(chat_template=None))


@pytest.fixture()
def tiny_runtime(tiny_path, tiny_draft_path):
    from specllama.runtime import Runtime, RuntimeConfig

    with Runtime(RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=2, n_batch=64,
                               n_ubatch=64)) as rt:
        yield rt


def _real_pair() -> tuple[str, str] | None:
    from specllama import registry

    t = registry.resolve(None, "target")
    d = registry.resolve(None, "draft")
    return (t, d) if t and d else None


@pytest.fixture(scope="session")
def real_pair() -> tuple[str, str]:
    """Paths of the verified default pair; skips (or fails under CI) when they are not installed."""
    pair = _real_pair()
    if pair is None:
        msg = "default model pair not installed (run `specllama models pull`)"
        if os.environ.get("SPECLLAMA_REQUIRE_MODELS"):
            pytest.fail(msg)
        pytest.skip(msg)
    return pair


@pytest.fixture(scope="session")
def threads() -> int:
    return int(os.environ.get("SPECLLAMA_TEST_THREADS", "2"))
