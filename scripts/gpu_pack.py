#!/usr/bin/env python3
"""Pack what ``scripts/gpu_check.sh`` needs on a GPU machine with no network, into
``.specllama-build/gpu/`` (about 30 MB: small enough to carry to a short GPU rental).

- ``lcp.tar.gz``: the llama-cpp-python sdist with ``patches/`` applied, its vendored llama.cpp trimmed
  to what a CUDA build compiles (no docs, tools, examples, tests, other backends, and of ``models/``
  only the Qwen2 vocabulary, which ``models/shaped.py`` uses as the shaped models' tokenizer);
- ``whl/``: wheels of the pure-Python packages the check needs beyond numpy, click and jinja2
  (gguf, diskcache, pytest and its dependencies).

Usage: python3 scripts/gpu_pack.py      (after ``python3 scripts/install.py``, which fetches the sdist)
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".specllama-build" / "gpu"
WHEELS = ["gguf", "diskcache", "pytest", "pluggy", "iniconfig", "packaging"]
DROP_DIRS = ("docs", "tools", "examples", "tests", "benches", "media", "gguf-py", "grammars", "scripts",
             "prompts", ".devops", ".github", "licenses", "requirements")
TOP_DROP = {".git", "examples", "docker", "docs", "tests"}
KEEP_BACKENDS = {"ggml-cpu", "ggml-cuda"}
KEEP_MODELS = {"ggml-vocab-qwen2.gguf"}


def _install_module():
    spec = importlib.util.spec_from_file_location("specllama_install", ROOT / "scripts" / "install.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def keep(rel: str) -> bool:
    """True for a path (relative to the sdist's top folder) the CUDA build or the check needs."""
    parts = rel.split("/")
    if parts[0] in TOP_DROP:
        return False
    if parts[:1] == ["llama_cpp"] and rel.endswith((".so", ".dylib", ".dll", ".json")) and "lib" in parts:
        return False  # libraries an earlier in-tree build left behind
    if parts[:2] != ["vendor", "llama.cpp"] or len(parts) < 3:
        return True
    sub = parts[2:]
    if sub[0] in DROP_DIRS and len(sub) > 1:
        return False
    if sub[0] == "models" and len(sub) > 1:
        return sub[1] in KEEP_MODELS
    if sub[:2] == ["ggml", "src"] and len(sub) > 3 and sub[2].startswith("ggml-"):
        return sub[2] in KEEP_BACKENDS
    return True


def main() -> int:
    inst = _install_module()
    src = inst.extract_and_patch(inst.fetch_sdist())
    OUT.mkdir(parents=True, exist_ok=True)
    tgz = OUT / "lcp.tar.gz"
    tmp = tgz.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as tf:
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src).as_posix()
            if path.is_file() and keep(rel):
                tf.add(path, arcname=f"lcp/{rel}", recursive=False)
    tmp.replace(tgz)
    whl = OUT / "whl"
    whl.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(whl),
                           "--only-binary", ":all:", *WHEELS])
    if proc.returncode != 0:
        print("gpu_pack: could not download the wheels", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"gpu_pack: {OUT} ({size / 2**20:.1f} MiB); carry it and run scripts/gpu_check.sh", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
