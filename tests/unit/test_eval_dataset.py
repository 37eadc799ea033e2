"""The on-disk cache of generated RULER sets: keyed by parameters and tokenizer, reused, never half-written."""

from __future__ import annotations

import pytest

pytest.importorskip("long_context_eval")
pytest.importorskip("wonderwords")
pytest.importorskip("punkt")

from specllama.eval import dataset
from specllama.eval.sample import PromptStyle

TASK, LENGTH = "niah_single_2", 1024


@pytest.fixture(scope="module")
def models(tiny_path, tiny_other_vocab_path):
    from specllama.engine.model import Model

    a, b = Model(tiny_path, role="target"), Model(tiny_other_vocab_path, role="target")
    yield a, b
    a.close()
    b.close()


@pytest.fixture()
def counting(monkeypatch):
    calls = []
    real = dataset.generate_sample

    def wrapped(task, model, length, seed, index, style=PromptStyle()):
        calls.append((task, length, seed, index))
        return real(task, model, length, seed, index, style)

    monkeypatch.setattr(dataset, "generate_sample", wrapped)
    return calls


def test_generated_once_then_reused(tmp_path, models, counting):
    m, _ = models
    first, key = dataset.load_or_generate(TASK, m, LENGTH, 7, 3, root=tmp_path)
    assert len(counting) == 3 and len(first) == 3
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name == f"{TASK}-L{LENGTH}-s7-{key}-n3.jsonl"
    again, key2 = dataset.load_or_generate(TASK, m, LENGTH, 7, 3, root=tmp_path)
    assert len(counting) == 3 and again == first and key2 == key
    fewer, _ = dataset.load_or_generate(TASK, m, LENGTH, 7, 2, root=tmp_path)
    assert len(counting) == 3 and fewer == first[:2]  # a larger cached set serves a smaller n
    more, _ = dataset.load_or_generate(TASK, m, LENGTH, 7, 4, root=tmp_path)
    assert len(counting) == 7 and more[:3] == first  # sample i does not depend on n


def test_key_follows_parameters_and_tokenizer(tmp_path, models, counting):
    m, other = models
    k = dataset.set_key(TASK, LENGTH, 7, m, PromptStyle())[0]
    assert dataset.set_key(TASK, LENGTH, 8, m, PromptStyle())[0] != k
    assert dataset.set_key(TASK, LENGTH + 256, 7, m, PromptStyle())[0] != k
    assert dataset.set_key("niah_single_3", LENGTH, 7, m, PromptStyle())[0] != k
    assert dataset.set_key(TASK, LENGTH, 7, other, PromptStyle())[0] != k
    assert dataset.set_key(TASK, LENGTH, 7, m, PromptStyle(raw=True))[0] != k
    dataset.load_or_generate(TASK, m, LENGTH, 7, 1, root=tmp_path)
    dataset.load_or_generate(TASK, m, LENGTH, 8, 1, root=tmp_path)
    assert len(counting) == 2 and len(list(tmp_path.iterdir())) == 2


def test_damaged_cache_file_is_regenerated(tmp_path, models, counting):
    m, _ = models
    first, _ = dataset.load_or_generate(TASK, m, LENGTH, 7, 2, root=tmp_path)
    path = next(tmp_path.iterdir())
    path.write_text(path.read_text().splitlines()[0] + "\n")  # header only: cut short
    again, _ = dataset.load_or_generate(TASK, m, LENGTH, 7, 2, root=tmp_path)
    assert len(counting) == 4 and again == first
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
