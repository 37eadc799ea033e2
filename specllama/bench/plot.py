"""PNG plot of TTFT against prompt length, one line per method (matplotlib, optional)."""

from __future__ import annotations

import os

from ..errors import ConfigError
from .report import Report


def plot_ttft(rep: Report, path: str | os.PathLike) -> str:
    """Write the plot to ``path`` (atomically). Axes are log-scaled when the data span enough.

    SpecPC-like methods also get their ideal bound as a dashed line.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install matplotlib") from None
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ConfigError(f"--plot writes a PNG; give a .png file name, not {path!r}")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ys: list[float] = []
    for name in rep.labels:
        cells = sorted((c for c in rep.cells if c.label == name and c.repeats), key=lambda c: c.n_prompt)
        if not cells:
            continue
        x = [c.n_prompt for c in cells]
        y = [c.median()["ttft_ms"] / 1000 for c in cells]
        ys += y
        ax.plot(x, y, marker="o", label=cells[0].label)
    for name in {b.method for b in rep.bounds()}:
        bs = sorted((b for b in rep.bounds() if b.method == name), key=lambda b: b.length)
        x = [rep.cell(b.length, name).n_prompt for b in bs]
        y = [b.ideal_ms / 1000 for b in bs]
        ys += y
        ax.plot(x, y, linestyle="--", color="grey", label=f"{name}: ideal bound")
    lengths = sorted({c.n_prompt for c in rep.cells})
    if len(lengths) > 1 and lengths[-1] / lengths[0] >= 4:
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [f"{n / 1024:g}K" if n % 256 == 0 else str(n) for n in lengths])
        ax.minorticks_off()
    positive = [v for v in ys if v > 0]
    if positive and max(positive) / min(positive) >= 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    tgt = rep.models.get("target") or {}
    title = f"TTFT vs prompt length: {tgt.get('name', 'target')}"
    if tgt.get("random_weights"):
        title += "\n(RANDOM WEIGHTS, timing only)"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("time to first token (s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path + ".partial.png"
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write --plot {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
