"""LongBench (v1) from local copies of its official JSONL files; no hub is reachable here.

Give ``--longbench PATH``: a directory holding ``{dataset}.jsonl`` (or ``{dataset}_e.jsonl``, the
LongBench-E split) files as in the official ``data.zip``, or one such file. Each line has
``input``, ``context``, ``answers``, ``all_classes`` and ``length``. Prompts, generation lengths,
metrics and the first-line rule for few-shot tasks are LongBench's (THUDM/LongBench,
``config/dataset2prompt.json``, ``dataset2maxlen.json``, ``eval.py``; MIT). The tasks LongBench
runs without a chat template (trec, triviaqa, samsum, lcc, repobench-p) are read raw here too.

A prompt longer than ``--length`` (prompt + answer tokens) is cut in the middle of its context,
as LongBench's ``pred.py`` does; the sample records it (``meta.truncated``) and the run says how
many were cut. Only the English datasets are supported: the Chinese ones need ``jieba``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..engine.model import Model
from .data import DataError
from .sample import PromptStyle, Sample, prompt_length

PREFIX = "longbench/"

PROMPTS = {
    "narrativeqa": "You are given a story, which can be either a novel or a movie script, and a question. "
                   "Answer the question as concisely as you can, using a single phrase if possible. Do not "
                   "provide any explanation.\n\nStory: {context}\n\nNow, answer the question based on the "
                   "story as concisely as you can, using a single phrase if possible. Do not provide any "
                   "explanation.\n\nQuestion: {input}\n\nAnswer:",
    "qasper": "You are given a scientific article and a question. Answer the question as concisely as you "
              "can, using a single phrase or sentence if possible. If the question cannot be answered based "
              "on the information in the article, write \"unanswerable\". If the question is a yes/no "
              "question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\n"
              "Article: {context}\n\n Answer the question based on the above article as concisely as you "
              "can, using a single phrase or sentence if possible. If the question cannot be answered "
              "based on the information in the article, write \"unanswerable\". If the question is a "
              "yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any "
              "explanation.\n\nQuestion: {input}\n\nAnswer:",
    "multifieldqa_en": "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following "
                       "question based on the above text, only give me the answer and do not output any "
                       "other words.\n\nQuestion: {input}\nAnswer:",
    "hotpotqa": "Answer the question based on the given passages. Only give me the answer and do not output "
                "any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question "
                "based on the given passages. Only give me the answer and do not output any other words."
                "\n\nQuestion: {input}\nAnswer:",
    "gov_report": "You are given a report by a government agency. Write a one-page summary of the report."
                  "\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",
    "qmsum": "You are given a meeting transcript and a query containing a question or instruction. Answer "
             "the query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based "
             "on the above meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",
    "multi_news": "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n"
                  "{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:",
    "trec": "Please determine the type of the question below. Here are some examples of questions.\n\n"
            "{context}\n{input}",
    "triviaqa": "Answer the question based on the given passage. Only give me the answer and do not output "
                "any other words. The following are some examples.\n\n{context}\n\n{input}",
    "samsum": "Summarize the dialogue into a few short sentences. The following are some examples.\n\n"
              "{context}\n\n{input}",
    "passage_count": "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. "
                     "Please carefully read these paragraphs and determine how many unique paragraphs there "
                     "are after removing duplicates. In other words, how many non-repeating paragraphs are "
                     "there in total?\n\n{context}\n\nPlease enter the final count of unique paragraphs "
                     "after removing duplicates. The output format should only contain the number, such as "
                     "1, 2, 3, and so on.\n\nThe final answer is: ",
    "passage_retrieval_en": "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine "
                            "which paragraph the abstract is from.\n\n{context}\n\nThe following is an "
                            "abstract.\n\n{input}\n\nPlease enter the number of the paragraph that the "
                            "abstract is from. The answer format must be like \"Paragraph 1\", \"Paragraph "
                            "2\", etc.\n\nThe answer is: ",
    "lcc": "Please complete the code given below. \n{context}Next line of code:\n",
    "repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:\n",
}
PROMPTS["2wikimqa"] = PROMPTS["musique"] = PROMPTS["hotpotqa"]

MAX_NEW_TOKENS = {
    "narrativeqa": 128, "qasper": 128, "multifieldqa_en": 64, "hotpotqa": 32, "2wikimqa": 32,
    "musique": 32, "gov_report": 512, "qmsum": 512, "multi_news": 512, "trec": 64, "triviaqa": 32,
    "samsum": 128, "passage_count": 32, "passage_retrieval_en": 32, "lcc": 64, "repobench-p": 64,
}
METRIC = {
    "narrativeqa": "qa_f1", "qasper": "qa_f1", "multifieldqa_en": "qa_f1", "hotpotqa": "qa_f1",
    "2wikimqa": "qa_f1", "musique": "qa_f1", "gov_report": "rouge", "qmsum": "rouge",
    "multi_news": "rouge", "trec": "classification", "triviaqa": "qa_f1", "samsum": "rouge",
    "passage_count": "count", "passage_retrieval_en": "retrieval", "lcc": "code_sim",
    "repobench-p": "code_sim",
}
FIRST_LINE = {"trec", "triviaqa", "samsum"}
RAW = {"trec", "triviaqa", "samsum", "lcc", "repobench-p"}
CHINESE = {"multifieldqa_zh", "dureader", "vcsum", "lsht", "passage_retrieval_zh"}
DATASETS = tuple(PROMPTS)


def is_longbench(task: str) -> bool:
    return task == "longbench" or task.startswith(PREFIX)


def check_task(task: str, path: str | None) -> None:
    """Raise a one-line error for an unknown LongBench task or a missing ``--longbench`` path."""
    name = task[len(PREFIX):] if task.startswith(PREFIX) else ""
    base = name.removesuffix("_e")
    if task != "longbench":
        if base in CHINESE:
            raise DataError(f"LongBench task {name} is Chinese; only the English datasets are supported")
        if base not in PROMPTS:
            raise DataError(f"unknown LongBench task {name!r}; choose from {', '.join(DATASETS)}")
    if not path:
        raise DataError("LongBench tasks need --longbench PATH: a directory of the official JSONL files "
                        "(data.zip of THUDM/LongBench) or one such file; no model hub is reachable here")
    if not Path(path).exists():
        raise DataError(f"--longbench path not found: {path}")
    if name and name not in _files(Path(path)):
        raise DataError(f"no {name}.jsonl at {path}")


def _files(path: Path) -> dict[str, Path]:
    """``{dataset: file}`` for the supported JSONL files at ``path``."""
    cands = [path] if path.is_file() else sorted(path.glob("*.jsonl"))
    out = {}
    for p in cands:
        name = p.stem
        base = name.removesuffix("_e")
        if base in PROMPTS:
            out[name] = p
    return out


def expand(tasks: list[str], path: str | None) -> list[str]:
    """Replace ``longbench`` by every supported dataset found at ``path``."""
    out: list[str] = []
    for t in tasks:
        if t == "longbench":
            check_task(t, path)
            found = _files(Path(path))
            if not found:
                raise DataError(f"no supported LongBench JSONL file at {path} (expected e.g. qasper.jsonl)")
            out += [PREFIX + n for n in found]
        else:
            out.append(t)
    return out


def _sample(dataset: str, index: int, row: dict) -> Sample:
    base = dataset.removesuffix("_e")
    template = PROMPTS[base]
    try:
        head, tail = template.split("{context}")
        tail = tail.format(input=row.get("input", ""))
        answers = row["answers"]
        context = row["context"]
    except (KeyError, AttributeError, TypeError):
        raise DataError(f"LongBench {dataset} line {index + 1}: expected the fields context, input and "
                        "answers of the official JSONL") from None
    if isinstance(answers, str):
        answers = [answers]
    meta = {"all_classes": row.get("all_classes") or [], "first_line": base in FIRST_LINE,
            "raw": base in RAW, "source_length": row.get("length")}
    return Sample(task=PREFIX + dataset, index=index, parts=((head, False), (context, True), (tail, False)),
                  answer_prefix="", outputs=tuple(str(a) for a in answers), max_new_tokens=MAX_NEW_TOKENS[base],
                  metric=METRIC[base], context_part=1, meta=meta)


def load(task: str, path: str | None, limit: int | None = None) -> list[Sample]:
    """The first ``limit`` samples of LongBench ``task`` (``longbench/<dataset>``) at ``path``."""
    check_task(task, path)
    dataset = task[len(PREFIX):]
    files = _files(Path(path))
    samples = []
    with open(files[dataset], encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if limit is not None and len(samples) >= limit:
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise DataError(f"{files[dataset]} line {i + 1} is not JSON") from None
            samples.append(_sample(dataset, len(samples), row))
    return samples


def fit_length(model: Model, sample: Sample, length: int, style: PromptStyle = PromptStyle()) -> Sample:
    """``sample`` with its context cut in the middle (by target tokens) so that prompt plus answer
    fit in ``length`` tokens; unchanged when it already fits. The cut is recorded in ``meta``."""
    n = prompt_length(model, sample, style)
    if n <= length:
        return replace(sample, length=n)
    context = sample.context
    toks = model.tokenize(context, add_special=False, parse_special=False)
    keep = len(toks) - (n - length)
    for _ in range(8):  # detokenizing and retokenizing at the seam may shift a few tokens
        if keep <= 0:
            raise DataError(f"{sample.task} sample {sample.index}: --length {length} leaves no room for "
                            "its context")
        half = keep // 2
        cut = model.detokenize(toks[:half]) + model.detokenize(toks[len(toks) - (keep - half):])
        parts = list(sample.parts)
        parts[sample.context_part] = (cut, True)
        cand = replace(sample, parts=tuple(parts), meta={**sample.meta, "truncated": n})
        m = prompt_length(model, cand, style)
        if m <= length:
            return replace(cand, length=m)
        keep -= m - length
    raise DataError(f"{sample.task} sample {sample.index}: could not cut it to {length} tokens")
