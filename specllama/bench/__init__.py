"""``specllama bench``: speed and memory of every method against dense, at several prompt lengths.

* ``prompts``  deterministic prompts of an exact length in target tokens (needle + question);
* ``idle``     how much CPU other processes take (``/proc``), checked before each measurement;
* ``probe``    the draft prefill with and without attention capture (capture cost, ideal bound);
* ``measure``  one cell (a method, or the probe, at one length) with repeats, in one process;
* ``worker``   the fresh process each cell runs in by default (honest per-method peak RSS);
* ``drafts``   the drafts one run compares (``--drafts``): a row per draft, who reads which length;
* ``runner``   the whole run; ``report`` medians, bound and JSON; ``schema`` its check; ``tables``
  the markdown; ``plot`` the PNG.
"""

from .measure import MeasureConfig
from .report import Bound, Report
from .schema import SCHEMA, validate
from .tables import markdown
from .runner import BenchPlan, run_bench

__all__ = ["BenchPlan", "Bound", "MeasureConfig", "Report", "SCHEMA", "markdown", "run_bench", "validate"]
