"""The kept sets of the score-free baselines (streaming, truncate, random), pinned.

They were pinned before these stages became score functions over the shared selection base, so a
refactor of that base cannot move a baseline's kept tokens silently: once through the pipeline on
the tiny models, once at stage level with a hand-made protection mask that the sinks, the window
and the ties actually exercise.
"""

import hashlib

import numpy as np
import pytest

from specllama.methods import Budget, GenConfig, Job, make_method
from specllama.pipeline import generate
from specllama.prompt import Prompt, build_prompt, document_request
from specllama.timings import Timings

DOC = "the green sky and the blue grass. " * 60


def ranges(kept) -> str:
    """``0-22,1367-1493``: the kept indices as runs."""
    k = np.asarray(kept, dtype=np.int64)
    cuts = np.flatnonzero(np.diff(k) != 1) + 1
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in np.split(k, cuts))


def digest(kept) -> str:
    return hashlib.sha1(np.asarray(kept, dtype=np.int64).tobytes()).hexdigest()[:16]


PIPELINE = {
    ("streaming", Budget(tokens=150)): "0-22,1367-1493",
    ("streaming", Budget(keep=0.4)): "0-22,919-1493",
    ("truncate", Budget(tokens=150)): "0-74,1419-1493",
    ("truncate", Budget(keep=0.4)): "0-298,1195-1493",
    ("random", Budget(tokens=150)): "sha1:40d565f77cab4044",
    ("random", Budget(keep=0.4)): "sha1:e72d2f4f1dce21ff",
}


@pytest.mark.parametrize("name,budget", list(PIPELINE), ids=lambda x: x if isinstance(x, str) else x.describe())
def test_baseline_kept_sets_through_the_pipeline(tiny_runtime, name, budget):
    p = build_prompt(tiny_runtime.target, document_request(DOC, "what is the secret code?", "be brief"))
    assert p.n == 1494
    r = generate(tiny_runtime, p, make_method(name, budget=budget), GenConfig(n_predict=1))
    want = PIPELINE[(name, budget)]
    got = f"sha1:{digest(r.kept)}" if want.startswith("sha1:") else ranges(r.kept)
    assert got == want


def _stage_case():
    n = 100
    protected = np.zeros(n, dtype=bool)
    protected[[10, 11, 50, 97]] = True
    return Prompt(np.arange(n, dtype=np.int32), protected)


STAGE = {
    ("streaming", 20): "0-3,10-11,50,87-99",
    ("streaming", 40): "0-3,10-11,50,67-99",
    ("truncate", 20): "0-8,10-11,50,92-99",
    ("truncate", 41): "0-19,50,80-99",
    ("random", 40): "9-11,26-27,38,50,67-99",
    ("random", 60): "0,4-5,7,9-12,14,16,22-23,26-30,33,37-38,45,47,49-50,52,57,65,67-99",
}


@pytest.mark.parametrize("name,budget", list(STAGE), ids=str)
def test_baseline_kept_sets_at_stage_level(name, budget):
    """No model: the stages' selection over a 100-token prompt protecting 10, 11, 50 and 97."""
    p = _stage_case()
    m = make_method(name, budget=Budget(tokens=budget))
    job = Job(prompt=p, budget=budget, gen=GenConfig(), rt=None, timings=Timings())
    if m.prompt_stage is not None:
        kept = m.prompt_stage.select(job, budget)
    else:
        kept = m.kv_stage.select(job, budget, None, p.protected)
    assert ranges(kept) == STAGE[(name, budget)]
