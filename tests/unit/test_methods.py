"""The method matrix: every registered method through the pipeline on the tiny models.

Each case of ``default_methods.DEFAULT_METHODS`` runs end to end and must: run as itself (no
fallback), keep at most its budget, keep every protected token and its window, report what it kept,
shrink the KV cache when it compresses, and declare its stages' contract (``methods.base``).
"""

from __future__ import annotations

import numpy as np
import pytest

from default_methods import DEFAULT_METHODS
from specllama.methods import METHODS, GenConfig, make_method
from specllama.methods.base import KVStage, PromptStage
from specllama.pipeline import generate
from specllama.prompt import build_prompt, document_request

DOC = "the green sky and the blue grass. " * 60
Q = "what is the secret code?"
CASES = [(m["name"], kw) for m in DEFAULT_METHODS for kw in m["cases"]]


def _id(case) -> str:
    name, kw = case
    return "-".join([name] + [f"{k}={v.describe().replace(' ', '')}" for k, v in kw.items()])


def test_every_registered_method_is_in_the_matrix():
    listed = [m["name"] for m in DEFAULT_METHODS]
    assert len(listed) == len(set(listed))
    assert set(METHODS) == set(listed), f"add to default_methods.py: {sorted(set(METHODS) - set(listed))}"


def _declares(stage, protocol) -> list[str]:
    """The members of ``protocol`` that ``stage`` lacks."""
    members = set(getattr(protocol, "__annotations__", {})) | {
        n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return sorted(n for n in members if not hasattr(stage, n))


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_method_runs_respects_its_budget_and_keeps_protected_tokens(tiny_runtime, case):
    name, kw = case
    method = make_method(name, **kw)
    for stage, protocol in ((method.prompt_stage, PromptStage), (method.kv_stage, KVStage)):
        if stage is not None:
            assert not _declares(stage, protocol), f"{name} stage lacks {_declares(stage, protocol)}"
    rt = tiny_runtime
    p = build_prompt(rt.target, document_request(DOC, Q, "be brief"))
    r = generate(rt, p, method, GenConfig(n_predict=3))
    assert r.method == name and len(r.tokens) >= 1
    kept = r.kept
    assert np.all(np.diff(kept) > 0) and kept[0] >= 0 and kept[-1] < p.n
    assert r.timings.n_kept == len(kept)
    assert np.all(np.isin(np.flatnonzero(p.protected), kept)), "a protected token was dropped"
    if not method.compresses:
        assert len(kept) == p.n and r.timings.kv_bytes == r.timings.kv_bytes_dense
        return
    budget = method.budget.resolve(p.n)
    assert len(kept) <= budget < p.n
    last = method.kv_stage or method.prompt_stage  # a KV stage keeps its window of what it is given
    assert np.all(np.isin(np.arange(p.n - last.window, p.n), kept)), "the window was dropped"
    assert r.timings.kv_bytes < r.timings.kv_bytes_dense
    if method.needs_draft:
        assert r.timings.draft_ms > 0
