"""``python -m specllama.bench.worker RESULT``: measure one cell in a fresh process.

The parent (``runner.py``) pickles ``(kind, RuntimeConfig, payload, length, MeasureConfig)`` to
stdin; the worker measures and pickles ``{"ok": result}`` or ``{"error": message, "code": n}`` to
the file ``RESULT``. A fresh process per cell makes its peak RSS that method's own. Progress goes
to stderr, which the parent shares.
"""

from __future__ import annotations

import os
import pickle
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m specllama.bench.worker RESULT < job.pickle\n")
        return 2
    out_path = argv[0]
    from ..errors import SpecllamaError
    from .measure import run_cell

    def log(msg: str) -> None:
        sys.stderr.write(f"specllama bench: {msg}\n")
        sys.stderr.flush()

    try:
        kind, runtime, payload, length, cfg = pickle.load(sys.stdin.buffer)
        result = {"ok": run_cell(kind, runtime, payload, length, cfg, log)}
    except SpecllamaError as exc:
        result = {"error": str(exc), "code": exc.exit_code}
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: hand it to the parent as one line
        if os.environ.get("SPECLLAMA_DEBUG"):
            raise
        result = {"error": f"internal error in the bench worker: {type(exc).__name__}: {exc}", "code": 1}
    with open(out_path, "wb") as fh:
        pickle.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
