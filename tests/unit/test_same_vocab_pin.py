"""The same-tokenizer path pinned bit for bit: kept sets and greedy outputs on the tiny pair.

The hashes were recorded before cross-tokenizer drafts (issue 13) were added; a draft sharing the
target's vocabulary must still take the token path exactly as before.
"""

import hashlib

import numpy as np
import pytest

from specllama.methods import Budget, GenConfig, SpecKVConfig, SpecPCConfig, make_method
from specllama.methods.draftpass import DraftPass
from specllama.pipeline import generate
from specllama.prompt import build_prompt, document_request
from specllama.runtime import Runtime, RuntimeConfig

DOC = "the green sky and the blue grass. the secret code is 7 3 1. " * 40
Q = "what is the secret code?"

CASES = {
    "specpc": (dict(name="specpc", budget=Budget(tokens=200)),
               "08cc2bde8af01689", [588, 403, 474, 201]),
    "specpc_exact_la3": (dict(name="specpc", budget=Budget(tokens=200),
                              cfg=SpecPCConfig(lookahead=3, draft=DraftPass(attn="full", layer_share=1.0))),
                         "07af1b1a7c60679d", [538, 328, 487, 645]),
    "speckv": (dict(name="speckv", budget=Budget(tokens=150), speckv=SpecKVConfig(lookahead=4)),
               "768436cbe9dbbd0c", [231, 617, 662, 325]),
    "speckvpc": (dict(name="speckvpc", budget=Budget(tokens=150), budget_pc=Budget(tokens=300),
                      speckv=SpecKVConfig(lookahead=4)),
                 "c88ec1af6f411c8f", [538, 599, 542, 464]),
}


@pytest.fixture(scope="module")
def pinned_runtime(tiny_path, tiny_draft_path, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SPECLLAMA_CACHE", str(tmp_path_factory.mktemp("pin-cache")))
    with Runtime(RuntimeConfig(target=tiny_path, draft=tiny_draft_path, n_threads=2, n_batch=128,
                               n_ubatch=128)) as rt:
        yield rt
    mp.undo()


@pytest.mark.parametrize("case", list(CASES))
def test_same_vocab_kept_sets_are_unchanged(pinned_runtime, case):
    kw, digest, out = CASES[case]
    kw = dict(kw)
    name = kw.pop("name")
    p = build_prompt(pinned_runtime.target, document_request(DOC, Q, "be brief"))
    assert p.n == 1734
    r = generate(pinned_runtime, p, make_method(name, n_predict=4, **kw), GenConfig(n_predict=4))
    assert r.method == name
    assert hashlib.sha1(np.asarray(r.kept, np.int64).tobytes()).hexdigest()[:16] == digest
    assert r.tokens.tolist() == out
