"""End to end on the real default pair (Qwen2.5-Coder 1.5B target, 0.5B draft): a needle in a
~3K-token essay is answered with SpecPC, SpecKV and SpecKV-PC, and survives `compress`."""

import os
import subprocess
import sys

import pytest

from specllama.api import Session
from specllama.eval.haystack import ANSWER, NEEDLE, QUESTION, needle_document

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def doc():
    return needle_document(words=2300, depth=0.4)


@pytest.fixture(scope="module")
def session(real_pair, threads):
    target, draft = real_pair
    with Session(target, draft, threads=threads) as s:
        yield s


def test_specpc_keep_quarter_finds_the_needle(session, doc):
    r = session.generate(doc, QUESTION, method="specpc", keep=0.25, n_predict=16)
    assert 2600 <= r.timings.n_prompt <= 3400
    assert r.timings.n_kept == -(-r.timings.n_prompt // 4)
    assert ANSWER in r.text, r.text


@pytest.mark.parametrize("method", ["speckv", "speckvpc"])
def test_speckv_budget_512_finds_the_needle(session, doc, method):
    r = session.generate(doc, QUESTION, method=method, budget=512, n_predict=16)
    assert r.timings.n_kept == 512
    assert r.timings.kv_bytes < r.timings.kv_bytes_dense / 3
    assert ANSWER in r.text, r.text


def test_compress_keeps_the_needle_sentence(real_pair, doc, tmp_path, threads):
    path = tmp_path / "doc.txt"
    path.write_text(doc)
    target, draft = real_pair
    p = subprocess.run([sys.executable, "-m", "specllama", "compress", "-m", target, "-md", draft, "-f", str(path),
                        "--question", QUESTION, "--keep", "0.25", "-t", str(threads)],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert p.returncode == 0, p.stderr
    assert NEEDLE in p.stdout
    assert len(p.stdout) < len(doc) / 2
