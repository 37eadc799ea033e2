"""Bad and odd inputs for the fuzz tests (``test_fuzz_cli.py``, ``test_fuzz_api.py``), made from a
seeded generator so every run tries the same cases, and the checks every case must pass."""

from __future__ import annotations

import json
import os
import random
import struct
from pathlib import Path

SEED = 20261130

# Values every int flag refuses at parse time, whatever its range
NOT_INTS = ["", "abc", "1.5", "1e3", "0x10", "--", "½", "nan", "12abc", "+-1", "1_0_", "∞", "\u0661\u0662x"]
NOT_FLOATS = ["", "abc", "1,5", "0x1p3", "--", "1.2.3", "½", "e", "inf?", "1e", "- 1"]


def rng(name: str) -> random.Random:
    """A generator of its own for each suite part, so adding cases to one leaves the others as they are."""
    return random.Random(f"{SEED}-{name}")


def junk_text(r: random.Random, n: int = 12) -> str:
    """Odd but valid text: controls, combining marks, RTL, emoji, private use, NUL excluded."""
    alphabet = "ab \t\n\r\x0b\x0c\u0301\u200b\u202e\u0627\u4e2d\U0001f600\ue000\uffff\u2028<|im_end|>{%}"
    return "".join(r.choice(alphabet) for _ in range(n))


def bad_utf8(r: random.Random) -> bytes:
    """Bytes that are not UTF-8: stray continuation bytes, overlong forms, CESU surrogates, cut sequences."""
    pieces = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88\x80\x80\x80",
              b"\xf4\x90\x80\x80"]
    head = bytes(r.randrange(32, 127) for _ in range(r.randrange(0, 40)))
    return head + r.choice(pieces) + bytes(r.randrange(0, 256) for _ in range(r.randrange(0, 20)))


def write_bad_ggufs(good: str, out: Path) -> dict[str, str]:
    """Malformed GGUF files made from the valid ``good`` one: ``{label: path}``."""
    data = Path(good).read_bytes()
    out.mkdir(parents=True, exist_ok=True)
    r = rng("gguf")

    def patched(offset: int, fmt: str, value) -> bytes:
        b = bytearray(data)
        struct.pack_into(fmt, b, offset, value)
        return bytes(b)

    files = {
        "empty": b"",
        "magic-only": b"GGUF",
        "header-cut": data[:24],
        "half": data[: len(data) // 2],
        "no-tail": data[:-1000],
        "wrong-magic": b"GGML" + data[4:],
        "version-99": patched(4, "<I", 99),
        "version-0": patched(4, "<I", 0),
        "huge-tensor-count": patched(8, "<Q", 2**63 - 1),
        "huge-kv-count": patched(16, "<Q", 2**62),
        "huge-key-length": patched(24, "<Q", 2**60),
        "random-bytes": b"GGUF" + bytes(r.randrange(256) for _ in range(4096)),
        "text": b"this is not a model\n",
        "zeros": bytes(4096),
    }
    paths = {}
    for label, blob in files.items():
        p = out / f"{label}.gguf"
        p.write_bytes(blob)
        paths[label] = str(p)
    (out / "dir.gguf").mkdir(exist_ok=True)
    paths["directory"] = str(out / "dir.gguf")
    paths["missing"] = str(out / "missing.gguf")
    return paths


def write_bad_docs(out: Path) -> dict[str, str]:
    """Prompt files that cannot be read as a document: ``{label: path}``."""
    r = rng("docs")
    out.mkdir(parents=True, exist_ok=True)
    files = {"empty": b"", "blank": b" \n\t\n", "utf16": "hello".encode("utf-16"), "latin1": "café".encode("latin-1"),
             **{f"bad-utf8-{i}": bad_utf8(r) for i in range(6)}}
    paths = {}
    for label, blob in files.items():
        p = out / f"{label}.txt"
        p.write_bytes(blob)
        paths[label] = str(p)
    paths["directory"] = str(out)
    paths["missing"] = str(out / "missing.txt")
    return paths


# -- what every case must satisfy -------------------------------------------------------------
def snapshot(*roots) -> dict[str, tuple]:
    """``{path: (size, mtime_ns)}`` of every file and directory under ``roots``."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                out[p] = (st.st_size if not os.path.isdir(p) else 0, st.st_mtime_ns if not os.path.isdir(p) else 0)
    return out


def changed(before: dict, after: dict, allowed=lambda p: False) -> list[str]:
    """Paths created, removed or modified, except those ``allowed`` says a case may write."""
    keys = set(before) | set(after)
    return sorted(p for p in keys if before.get(p) != after.get(p) and not allowed(p))


def check_cli(label: str, rc, out: bytes, err: bytes, as_json: bool = False, codes=(2,)) -> None:
    """A refused command line: exit code in ``codes``, one ``specllama: error:`` line (the last line
    on stderr), no traceback, stdout empty (or, with ``--json``, one JSON error object)."""
    text = err.decode("utf-8", "replace")
    lines = text.splitlines()
    assert rc in codes, f"{label}: exit {rc}\n{text[-2000:]}"
    assert "Traceback" not in text and "internal error" not in text, f"{label}:\n{text[-2000:]}"
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith("specllama: error: "), \
        f"{label}:\n{text[-2000:]}"
    if as_json:
        try:
            obj = json.loads(out)
        except ValueError:
            obj = {}
        assert set(obj) == {"error"} and obj["error"]["message"], f"{label}: {out[:300]!r}"
    else:
        assert out == b"", f"{label}: stdout {out[:300]!r}"


class Failures:
    """Collects the failed cases so one run reports all of them."""

    def __init__(self):
        self.items: list[str] = []

    def check(self, fn, *args, **kw) -> None:
        try:
            fn(*args, **kw)
        except AssertionError as exc:
            self.items.append(str(exc))

    def assert_none(self, n_cases: int) -> None:
        assert not self.items, f"{len(self.items)} of {n_cases} cases failed:\n\n" + "\n\n".join(self.items[:25])
