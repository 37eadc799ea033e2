"""The built-in methods' settings, each declared once, in the order ``--help`` lists them.

Each is bound to config fields in the method modules (``KERNEL.field(64)`` in ``SpecPCConfig``,
``KERNEL.field(7)`` in ``SpecKVConfig``), where each method's default lives. ``--budget`` and
``--keep`` make every method's :class:`~specllama.methods.Budget` (``COMMON``). A new method may
declare further settings in its own module; they are listed after these.
"""

from __future__ import annotations

from .setting import Setting

DRAFT_ATTN = ("sparse", "full")
POSITIONS = ("renumber", "original")
MAX_WINDOW = 1 << 20

BUDGET = Setting("budget", ("--budget",), int, min=1,
                 help="Prompt tokens the target keeps (protected tokens included) [default: 1024].")
KEEP = Setting("keep", ("--keep",), float, help="Budget as a fraction of the prompt.")
BUDGET_PC = Setting("budget_pc", ("--budget-pc",), int, min=1,
                    help="speckvpc: tokens SpecPC keeps before SpecKV [default: 2048].")
WINDOW = Setting("window", ("--window",), int, min=1,
                 help="Last prompt tokens whose attention scores the prompt, always kept "
                      "[specpc 64, speckv/snapkv 32].")
LOOKAHEAD = Setting("lookahead", ("--lookahead",), int, min=0,
                    help="Draft tokens used for scoring [specpc 1; speckv: -n, capped by this].")
KERNEL = Setting("kernel", ("--kernel",), int, min=1, help="Score pooling width [specpc 64, speckv 7].")
POOL = Setting("pool", ("--pool",), str, choices=("max", "avg"), choices_text="max or avg", show_default=True)
REDUCTION = Setting("reduction", ("--reduction",), str, choices=("max", "mean"), choices_text="max or mean",
                    show_default=True, help="Reduction over heads, queries, layers and steps.")
NEIGHBOURS = Setting("neighbours", ("--neighbours",), int, min=1,
                     help="specpc: span kept around each chosen token [default: kernel].")
START_LAYER = Setting("start_layer", ("--start-layer",), int, min=0,
                      help="specpc: first draft layer read [default: n_layer/3].")
NO_WEIGHTED_QUERY = Setting("no_weighted_query", ("--no-weighted-query",), bool, invert=True,
                            help="specpc: weigh all window queries equally.")
KEPT_POSITIONS = Setting("positions", ("--positions",), str, choices=POSITIONS, show_default=True,
                         help="specpc: positions of the kept tokens in the target.")
DRAFT_ATTENTION = Setting("draft_attn", ("--draft-attn",), str, choices=DRAFT_ATTN, strict=True,
                          help="specpc: draft queries before the window attend to sinks + a local window "
                               "(sparse) or to every key (full, the exact draft) [default: sparse].")
DRAFT_WINDOW = Setting("draft_window", ("--draft-window",), int, min=1, max=MAX_WINDOW, strict=True,
                       help="specpc: keys each sparse draft query attends to [default: 512].")
DRAFT_SINKS = Setting("draft_sinks", ("--draft-sinks",), int, min=0, max=MAX_WINDOW, strict=True,
                      help="specpc: first prompt keys every sparse draft query attends to [default: 64].")
DRAFT_LAYERS = Setting("draft_layers", ("--draft-layers",), int, min=0, strict=True,
                       help="specpc: run only the first N draft layers (0: all) [default: two thirds of "
                            "them, rounded up; all with --lookahead above 1].")

COMMON = (BUDGET, KEEP)
BUILTIN = (BUDGET, KEEP, BUDGET_PC, WINDOW, LOOKAHEAD, KERNEL, POOL, REDUCTION, NEIGHBOURS, START_LAYER,
           NO_WEIGHTED_QUERY, KEPT_POSITIONS, DRAFT_ATTENTION, DRAFT_WINDOW, DRAFT_SINKS, DRAFT_LAYERS)
