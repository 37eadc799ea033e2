"""Every registered method with the settings the method matrix runs it at (as kvpress's
``tests/default_presses.py``). A new method is tested by one entry here; ``test_methods.py``
fails when a registered method has none.

Each entry: ``name`` (the registry name) and ``cases``, keyword arguments for ``make_method``;
the budget the target must respect is ``budget`` (for two-stage methods the final one).
"""

from specllama.methods import Budget

DEFAULT_METHODS = [
    {"name": "dense", "cases": [{}]},
    {"name": "specpc", "cases": [{"budget": Budget(tokens=200)}, {"budget": Budget(keep=0.3)}]},
    {"name": "speckv", "cases": [{"budget": Budget(tokens=200)}, {"budget": Budget(keep=0.3)}]},
    {"name": "speckvpc", "cases": [{"budget": Budget(tokens=200), "budget_pc": Budget(tokens=600)},
                                   {"budget": Budget(keep=0.2), "budget_pc": Budget(keep=0.5)}]},
    {"name": "snapkv", "cases": [{"budget": Budget(tokens=200)}, {"budget": Budget(keep=0.3)}]},
    {"name": "streaming", "cases": [{"budget": Budget(tokens=200)}, {"budget": Budget(keep=0.3)}]},
    {"name": "truncate", "cases": [{"budget": Budget(tokens=200)}, {"budget": Budget(keep=0.3)}]},
    {"name": "random", "cases": [{"budget": Budget(tokens=200)}, {"budget": Budget(keep=0.3)}]},
]
