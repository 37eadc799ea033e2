"""``specllama bench --drafts``: several drafts in one run (rows, labels, skips, the report's
tables and JSON), the checks made before measuring, and smoke runs on tiny models."""

import json
import os

import pytest

from models.synth import TinySpec, write_tiny
from specllama.bench.drafts import BenchDraft, expand_rows, resolve_drafts, unreadable
from specllama.bench.report import Report, validate
from specllama.bench.tables import markdown
from specllama.errors import ConfigError, ModelError
from specllama.methods import Budget, make_method

from test_bench import QUICK, cell, probe, report, sl


@pytest.fixture(scope="module")
def short_paths(tmp_path_factory):
    """Two drafts with short training contexts: one with the target's tokenizer (600 tokens), one
    with another (510: the 500-token prompt is more than 510 of its tokens, fewer of the target's)."""
    d = tmp_path_factory.mktemp("short-drafts")
    return (write_tiny(d / "short.gguf", TinySpec(seed=2, n_ctx_train=600)),
            write_tiny(d / "short-other.gguf", TinySpec(vocab_variant=1, n_ctx_train=510)))


# -- rows and labels ---------------------------------------------------------------------------
def test_rows_one_per_draft_for_draft_methods_and_dense_once():
    b = Budget(keep=0.2)
    methods = [make_method("dense"), make_method("specpc", budget=b), make_method("snapkv", budget=b),
               make_method("speckv", budget=b)]
    a, z = BenchDraft("/m/a.gguf", "a"), BenchDraft("/m/Z.Q4.GGUF", "z-q4")
    rows = expand_rows(methods, (a, z))
    assert [(r.label, r.draft) for r in rows] == [
        ("dense", None), ("specpc keep 0.2 [a]", a), ("specpc keep 0.2 [z-q4]", z), ("snapkv keep 0.2", None),
        ("speckv keep 0.2 [a]", a), ("speckv keep 0.2 [z-q4]", z)]
    # one draft: the labels of a run without --drafts
    assert [r.label for r in expand_rows(methods, (a,))] == [m.describe() for m in methods]
    assert BenchDraft.of("/x/SmolLM2-135M-Instruct.Q4_1.gguf").tag == "SmolLM2-135M-Instruct.Q4_1"


def test_resolve_drafts_checks_every_entry(tiny_draft_path, tiny_other_vocab_path, tmp_path, monkeypatch):
    got = resolve_drafts(f"{tiny_draft_path}, {tiny_other_vocab_path}")
    assert got == (BenchDraft(tiny_draft_path, "tiny-draft"), BenchDraft(tiny_other_vocab_path, "tiny-other-vocab"))
    same = os.path.join(os.path.dirname(tiny_draft_path), ".", os.path.basename(tiny_draft_path))
    copy = tmp_path / "tiny-draft.gguf"
    copy.write_bytes(open(tiny_draft_path, "rb").read())
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + bytes(60))
    for spec, err, needle in (
            (f"{tiny_draft_path},{same}", ConfigError, "is listed twice"),
            (f"{tiny_draft_path},{copy}", ConfigError, "same tag"),
            ("nosuch-model", ConfigError, "neither a file nor a known model (known drafts: "),
            (str(bad), ModelError, "not a GGUF"),
            (f"{tiny_draft_path},,x", ConfigError, "empty entry"),
            (" , ", ConfigError, "at least one")):
        with pytest.raises(err, match=None) as e:
            resolve_drafts(spec)
        assert needle in str(e.value), e.value
    # a manifest name tags its rows with that name, not the file's
    from specllama import registry

    real = registry.resolve
    monkeypatch.setattr(registry, "resolve", lambda s, role: tiny_draft_path if s == "smollm2-135m-instruct-q4_1"
                        else real(s, role))
    assert resolve_drafts("smollm2-135m-instruct-q4_1") == (BenchDraft(tiny_draft_path, "smollm2-135m-instruct-q4_1"),)


def test_unreadable_counts_each_drafts_own_tokens(tiny_path, tiny_draft_path, short_paths):
    short, short_other = short_paths
    drafts = (BenchDraft.of(tiny_draft_path), BenchDraft.of(short), BenchDraft.of(short_other))
    got = unreadable(tiny_path, drafts, (500, 900), None)
    assert set(got) == {(short, 900), (short_other, 500), (short_other, 900)}
    assert got[(short, 900)] == "draft short reads at most 600 tokens"
    # 500 target tokens fit 510, but this draft reads the request as more of its own tokens
    assert got[(short_other, 500)].startswith("draft short-other reads at most 510 tokens, and the 500-token "
                                              "prompt is 5") and got[(short_other, 500)].endswith("of its tokens")


# -- the report --------------------------------------------------------------------------------
def two_draft_report() -> Report:
    """Dense once per length, specpc with drafts a (fast) and b (slow), probes of both."""
    rep = report()
    rep.cells = [c for c in rep.cells if c.method == "dense"]
    rep.probes = []
    info = {"a": {"name": "a.gguf", "n_layer": 24, "size_bytes": 400 << 20},
            "b": {"name": "b.gguf", "n_layer": 30, "size_bytes": 88 << 20}}
    rep.models["drafts"] = [dict(info["a"], path="/m/a.gguf"), dict(info["b"], path="/m/b.gguf")]
    rep.config.update(labels=["dense", "specpc keep 0.2 [a]", "specpc keep 0.2 [b]"], drafts=["a", "b"],
                      skipped=[{"length": 8192, "label": "specpc keep 0.2 [b]",
                                "reason": "draft b reads at most 8192 tokens, and the 8192-token prompt is 8500 "
                                          "of its tokens"}])
    for L, scale in ((2048, 1.0), (8192, 4.0)):
        for tag, draft_ms in (("a", 280), ("b", 140)):
            if L == 8192 and tag == "b":
                continue
            c = cell("specpc", L, 500 * scale + draft_ms, 200 * scale, draft=draft_ms * scale, stages="prompt",
                     needs_draft=True)
            c.label, c.draft_model = f"specpc keep 0.2 [{tag}]", info[tag]
            rep.cells.append(c)
            p = probe(L, off=draft_ms * scale, on=draft_ms * scale * 0.9, captured=draft_ms * scale * 1.1)
            p.draft_model = info[tag]
            rep.probes.append(p)
    return rep


def test_report_rows_per_draft_in_json_markdown_and_back():
    rep = two_draft_report()
    bounds = {(b.length, b.method): b for b in rep.bounds()}
    assert set(bounds) == {(2048, "specpc keep 0.2 [a]"), (2048, "specpc keep 0.2 [b]"), (8192, "specpc keep 0.2 [a]")}
    # each row's bound is its own draft's plain prefill (a: 280 x 0.9, b: 140 x 0.9)
    assert bounds[(2048, "specpc keep 0.2 [b]")].draft_plain_ms == pytest.approx(126.0)
    assert bounds[(2048, "specpc keep 0.2 [a]")].draft_plain_ms == pytest.approx(252.0)
    assert bounds[(2048, "specpc keep 0.2 [b]")].draft_name == "b.gguf"
    d = json.loads(json.dumps(rep.to_json()))
    assert validate(d) == []
    assert [c["draft_model"] and c["draft_model"]["name"] for c in d["cells"]] == [
        None, None, "a.gguf", "b.gguf", "a.gguf"]
    back = Report.from_json(d)
    assert markdown(back) == markdown(rep)
    md = markdown(rep)
    assert "- drafts: a.gguf (0.39 GiB, 24 layers × ?); b.gguf (0.09 GiB, 30 layers × ?)" in md
    assert "| prompt | method | draft | kept |" in md and "\n|---|---|---|---:|" in md
    assert "| 2,048 | specpc keep 0.2 [b] | 30 layers, 88.0 MiB | 409 |" in md
    assert md.count("| 2,048 | dense | – |") == 1 and md.count("| 8,192 | dense | – |") == 1
    assert "_skipped_: specpc keep 0.2 [b] at 8,192 tokens (draft b reads at most 8192 tokens" in md
    # the probe table: one row per draft and length, each with its own row's bound
    assert "| 2,048 | b.gguf | 140 |" in md and md.count("| 2,048 | b.gguf |") == 1
    assert "| specpc keep 0.2 [b] | 126 |" in md and "| specpc keep 0.2 [a] | 252 |" in md
    assert md.count("specpc keep 0.2 [a] |") == 4  # two measured rows, two bounds


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d["cells"][2].update(draft_model={"name": "a.gguf"}), "cells[2].draft_model: missing 'n_layer'"),
    (lambda d: d["probes"][0].update(draft_model={"name": 1, "n_layer": 2, "size_bytes": 3}),
     "probes[0].draft_model.name: expected str"),
    (lambda d: d["config"].update(skipped="x"), "config.skipped: expected list"),
    (lambda d: d["config"]["skipped"][0].pop("reason"), "config.skipped[0]: missing 'reason'"),
])
def test_schema_checks_the_draft_records(mutate, needle):
    d = json.loads(json.dumps(two_draft_report().to_json()))
    mutate(d)
    assert any(needle in p for p in validate(d)), validate(d)


def test_a_report_from_before_drafts_still_reads_and_renders():
    """The README's saved run has no draft records: it reads, bounds and renders as it did."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "results", "bench-default.json")
    with open(path, encoding="utf-8") as fh:
        d = json.load(fh)
    assert "draft_model" not in d["cells"][0] and "skipped" not in d["config"]
    back = Report.from_json(d)
    assert [b["method"] for b in d["bounds"]] == [b.method for b in back.bounds()]
    md = markdown(back)
    assert "- draft: " in md and "| draft |" not in md and "_skipped_" not in md


# -- the command -------------------------------------------------------------------------------
def test_smoke_three_drafts_fresh_process_per_row(tiny_path, tiny_draft_path, tiny_other_vocab_path, short_paths,
                                                   tmp_path):
    short_other = short_paths[1]
    saved, png = tmp_path / "run.json", tmp_path / "ttft.png"
    p = sl("-m", tiny_path, "--drafts", f"{tiny_draft_path},{tiny_other_vocab_path},{short_other}",
           "--lengths", "500", "--methods", "specpc", *QUICK, "--no-warmup", "--json", "--save", str(saved),
           "--plot", str(png))
    err = p.stderr.decode()
    assert p.returncode == 0, err[-2000:]
    d = json.loads(p.stdout)
    assert validate(d) == []
    assert [c["label"] for c in d["cells"]] == ["specpc keep 0.4 [tiny-draft]", "specpc keep 0.4 [tiny-other-vocab]",
                                                "dense"]
    assert [c["draft_model"] and (c["draft_model"]["name"], c["draft_model"]["n_layer"]) for c in d["cells"]] == [
        ("tiny-draft.gguf", 3), ("tiny-other-vocab.gguf", 2), None]
    for c in d["cells"]:  # each row its own process: its own peak RSS
        assert c["rss_scope"] == "method" and c["peak_rss_bytes"] > 1 << 20
    assert len({c["prompt_sha256"] for c in d["cells"]}) == 1
    assert [p["draft_model"]["name"] for p in d["probes"]] == ["tiny-draft.gguf", "tiny-other-vocab.gguf"]
    assert [(b["method"], b["draft_name"]) for b in d["bounds"]] == [
        ("specpc keep 0.4 [tiny-draft]", "tiny-draft.gguf"), ("specpc keep 0.4 [tiny-other-vocab]",
                                                              "tiny-other-vocab.gguf")]
    (s,) = d["config"]["skipped"]
    assert s["label"] == "specpc keep 0.4 [short-other]" and "of its tokens" in s["reason"]
    assert "note: draft short-other reads at most 510 tokens" in err and "its rows at 500 tokens are skipped" in err
    assert [m["name"] for m in d["models"]["drafts"]] == ["tiny-draft.gguf", "tiny-other-vocab.gguf"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    q = sl("--from-json", str(saved))
    out = q.stdout.decode()
    assert q.returncode == 0 and "| 500 | specpc keep 0.4 [tiny-other-vocab] | 2 layers," in out
    assert "_skipped_: specpc keep 0.4 [short-other] at 500 tokens" in out


def test_drafts_compose_with_exact_draft_and_several_methods(tiny_path, tiny_draft_path, tiny_other_vocab_path):
    p = sl("-m", tiny_path, "--drafts", f"{tiny_draft_path},{tiny_other_vocab_path}", "--lengths", "500",
           "--methods", "specpc,snapkv,speckv", "--exact-draft", *QUICK, "--in-process", "--no-probe",
           "--no-warmup", "--json")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    d = json.loads(p.stdout)
    labels = d["config"]["labels"]
    assert labels[0] == "dense" and len(labels) == len(set(labels)) == 2 + 2 * 3
    assert sorted(c["label"] for c in d["cells"]) == sorted(labels)
    assert [lb for lb in labels if "[" not in lb] == ["dense", "snapkv keep 0.4"]
    assert sum(lb.endswith("[tiny-other-vocab]") for lb in labels) == 3


def test_help_says_how_drafts_and_short_contexts_behave():
    out = sl("--help").stdout.decode()
    assert "--drafts" in out and "skipped" in out and "dense runs once per length" in out


@pytest.mark.parametrize("args, needle", [
    (("--drafts", "nosuch-model"), "'nosuch-model' is neither a file nor a known model"),
    (("--drafts", "/nonexistent/x.gguf"), "neither a file nor a known model"),
    (("--drafts", "{d},{d}"), "is listed twice"),
    (("--drafts", "{d}", "-md", "{d}"), "either -md or --drafts"),
    (("--drafts", "{d},{o}", "--methods", "snapkv"), "none of the methods compared reads a draft"),
    (("--drafts", "{s},{so}", "--lengths", "900"), "--lengths 900: no draft reads the prompt (draft short reads"),
    # one draft of another tokenizer: its own count decides, before anything is measured
    (("-md", "{so}", "--lengths", "500"), "--lengths 500: draft short-other reads at most 510 tokens, and the"),
])
def test_bad_drafts_are_one_line_before_measuring(tiny_path, tiny_draft_path, tiny_other_vocab_path, short_paths,
                                                  args, needle):
    paths = {"d": tiny_draft_path, "o": tiny_other_vocab_path, "s": short_paths[0], "so": short_paths[1]}
    p = sl("-m", tiny_path, *QUICK, *(a.format(**paths) for a in args), timeout=60)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("specllama: error: ") and needle in err, err
    assert p.stdout == b""
