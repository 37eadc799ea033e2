"""Loading llama.cpp once: the bindings, backend initialisation, logging, and raw ggml access.

``llama_cpp.llama_cpp`` is llama-cpp-python's ctypes mirror of ``llama.h``. This module adds the
few ggml pieces the bindings do not cover (the ``ggml_tensor`` layout and
``ggml_backend_tensor_get``), which attention capture needs.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import sys
import threading

from ..errors import SpecllamaError

try:  # pragma: no cover - exercised by every test run
    import llama_cpp.llama_cpp as C  # noqa: N812  (the C API, as in llama.h)
except ImportError as exc:  # pragma: no cover
    raise SpecllamaError(
        f"llama-cpp-python is not installed or failed to load ({exc}); run `make install`"
    ) from exc

POS_GAPS_ENV = "LLAMA_ALLOW_POS_GAPS"

_init_lock = threading.Lock()
_initialised = False
_verbose = False

GGML_MAX_DIMS = 4
GGML_MAX_SRC = 10
GGML_MAX_OP_PARAMS = 64
GGML_MAX_NAME = 64
GGML_TYPE_F32 = 0


class GGMLTensor(ctypes.Structure):
    """``struct ggml_tensor`` from ggml.h (vendored llama.cpp of llama-cpp-python 0.3.36)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def _ggml_fn(name: str, restype=None, argtypes=None):
    """A ggml function reached through libllama's handle (dlsym searches its dependencies), or None;
    ``restype``/``argtypes`` are set when given."""
    fn = getattr(getattr(C, "_lib", None), name, None)
    if fn is not None and argtypes is not None:
        fn.restype, fn.argtypes = restype, argtypes
    return fn


def _ggml_base_symbol(name: str):
    """A libggml-base function, from the copy llama-cpp-python's libllama already loaded.

    ``dlsym`` on libllama's handle searches its dependencies, so this needs no second ``dlopen``.
    Opening ``lib/libggml-base.so`` by path would map a SECOND copy of the library: pip installs the
    ``.so``/``.so.0``/``.so.0.x.y`` names as separate files, and libllama links ``libggml-base.so.0``.
    Two copies of ggml's global state in one process, the second one RTLD_GLOBAL, is what crashed
    CUDA builds at model load (issue 12); tests/unit/test_engine.py checks that one copy is mapped.
    """
    fn = _ggml_fn(name)
    if fn is not None:
        return fn
    # a llama.cpp whose libllama does not link ggml-base (static builds): the loaded copy by soname
    for soname in ("libggml-base.so.0", "libggml-base.so", "libggml-base.dylib", "ggml-base.dll"):
        try:
            return getattr(ctypes.CDLL(soname, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL), name)
        except (OSError, AttributeError):
            continue
    raise SpecllamaError(f"llama-cpp-python's llama.cpp does not export {name}; reinstall it with `make install`")


ggml_backend_tensor_get = _ggml_base_symbol("ggml_backend_tensor_get")
ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
ggml_backend_tensor_get.restype = None


def _bind_local_attn():
    """``llama_set_local_attn`` from patches/0002, or None on a build without it."""
    fn = getattr(getattr(C, "_lib", None), "llama_set_local_attn", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32]
    fn.restype = ctypes.c_bool
    return fn


llama_set_local_attn = _bind_local_attn()


@C.llama_log_callback
def _log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:  # pragma: no cover
    if _verbose and text:
        try:
            sys.stderr.write(text.decode("utf-8", "replace"))
        except Exception:
            pass


def init(verbose: bool | None = None) -> None:
    """Initialise llama.cpp's backends once per process and route its log.

    llama.cpp's own log is silent unless ``verbose`` (``-v`` on the CLI, or SPECLLAMA_VERBOSE=1).

    Before the backends start, the first call sets ``LLAMA_ALLOW_POS_GAPS=1`` in the environment
    unless it is set already: ``patches/0001`` reads it once, at the first decode, and then lets a
    sequence skip positions forward (``--positions original``, the chat's KV methods); llama.cpp
    built without the patch ignores it. ``Model`` calls this before loading, so every context is
    created after it; set the variable to ``0`` to keep upstream's position checks.
    """
    global _initialised, _verbose
    if verbose is None:
        verbose = os.environ.get("SPECLLAMA_VERBOSE", "") not in ("", "0")
    with _init_lock:
        _verbose = bool(verbose)
        if not _initialised:
            os.environ.setdefault(POS_GAPS_ENV, "1")
            C.llama_log_set(_log_callback, ctypes.c_void_p(0))
            C.llama_backend_init()
            _initialised = True


def build_info() -> dict:
    """What ``scripts/install.py`` recorded about this llama-cpp-python build ({} if not built by it)."""
    import json

    stamp = pathlib.Path(C.__file__).resolve().parent / ".specllama-build.json"
    try:
        return json.loads(stamp.read_text())
    except (OSError, ValueError):
        return {}


def has_patch(prefix: str) -> bool:
    """True if the installed llama.cpp was built with the patch whose file name starts with ``prefix``."""
    return any(p.startswith(prefix) for p in build_info().get("patches", []))


def set_verbose(verbose: bool) -> None:
    global _verbose
    _verbose = bool(verbose)


def backend_registry() -> list[tuple[str, int]]:
    """``(name, device count)`` of every backend compiled into this llama.cpp build, e.g.
    ``[("CUDA", 0), ("CPU", 1)]`` for a CUDA build on a machine where no GPU is visible."""
    init()
    count = _ggml_fn("ggml_backend_reg_count", ctypes.c_size_t, [])
    get = _ggml_fn("ggml_backend_reg_get", ctypes.c_void_p, [ctypes.c_size_t])
    name = _ggml_fn("ggml_backend_reg_name", ctypes.c_char_p, [ctypes.c_void_p])
    devs = _ggml_fn("ggml_backend_reg_dev_count", ctypes.c_size_t, [ctypes.c_void_p])
    if None in (count, get, name, devs):
        return []
    out = []
    for i in range(count()):
        reg = get(i)
        out.append(((name(reg) or b"?").decode("utf-8", "replace"), int(devs(reg))))
    return out


# backends that never hold offloaded layers (CPU, BLAS helpers, remote RPC servers)
_HOST_BACKENDS = {"CPU", "BLAS", "RPC"}
_GPU_WARNED_ENV = "SPECLLAMA_GPU_WARNED"  # inherited by worker processes: one warning per run


def gpu_offload_note(regs: list[tuple[str, int]] | None = None, supported: bool | None = None) -> str | None:
    """Why ``-ngl``/``-ngld`` would change nothing on this build, or None when they take effect."""
    supported = bool(C.llama_supports_gpu_offload()) if supported is None else supported
    if supported:
        return None
    regs = backend_registry() if regs is None else regs
    gpu = [name for name, _ in regs if name.upper() not in _HOST_BACKENDS]
    if gpu:
        return (f"warning: this llama.cpp build has {'/'.join(gpu)} but no {gpu[0]} device is visible; "
                "-ngl/-ngld are ignored and everything runs on the CPU")
    return ("warning: this llama.cpp build has no GPU backend, so -ngl/-ngld change nothing; build it "
            "with `python3 scripts/install.py --cuda` (CMAKE_ARGS -DGGML_CUDA=on)")


def warn_gpu_offload(n_gpu_layers: int) -> None:
    """Print :func:`gpu_offload_note` once per run (worker processes inherit the mark) when layers
    are asked for on the GPU and none can go there."""
    if n_gpu_layers <= 0 or os.environ.get(_GPU_WARNED_ENV):
        return
    msg = gpu_offload_note()
    if msg:
        os.environ[_GPU_WARNED_ENV] = "1"
        sys.stderr.write(f"specllama: {msg}\n")
        sys.stderr.flush()


# -- Ctrl-C inside a ctypes callback -------------------------------------------------------------
# A SIGINT handled while llama.cpp runs one of our callbacks (attention capture, abort, log) raises
# KeyboardInterrupt inside it; ctypes cannot pass it on, so Python prints it as "Exception ignored"
# and llama.cpp carries on. ``catch_swallowed_interrupts`` records it instead, and Context.decode
# raises ``Interrupted`` as soon as the llama.cpp call returns.
_swallowed = threading.Event()


def catch_swallowed_interrupts() -> None:
    """Route KeyboardInterrupts lost in ctypes callbacks to :func:`take_swallowed_interrupt` (quietly)."""
    previous = sys.unraisablehook
    if getattr(previous, "_specllama", False):
        return

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _swallowed.set()
        else:
            previous(unraisable)

    hook._specllama = True
    sys.unraisablehook = hook


def take_swallowed_interrupt() -> bool:
    """True (once) if a KeyboardInterrupt was lost in a callback since the last call."""
    if _swallowed.is_set():
        _swallowed.clear()
        return True
    return False
