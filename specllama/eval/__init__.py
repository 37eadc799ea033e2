"""Offline accuracy evaluation: RULER generated locally, LongBench from local files, a method x budget
grid run through :func:`specllama.pipeline.generate`, and its tables and plots.

Modules: ``data`` (offline sources), ``sample`` (one sample and its prompt), ``ruler`` (the 13 task
generators), ``dataset`` (generation with the on-disk cache), ``longbench`` (local JSONL loader),
``metrics`` (scores), ``preflight`` (GGUF context length without loading), ``runner`` (the grid,
resume), ``progress`` (progress line and ETA), ``report`` (markdown and PNG), ``presets`` (quick
and full), ``paired`` (bootstrap intervals and McNemar's exact test, numpy only), ``compare``
(two saved columns paired on the same samples) and ``paired_report`` (its markdown).
"""
