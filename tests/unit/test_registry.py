"""Model assembly from registry wheels: verification, corruption detection, atomic install."""

import hashlib

import zipfile

import pytest

from specllama import registry
from specllama.errors import ModelError


def _wheels(tmp_path, chunks):
    d = tmp_path / "wheels"
    d.mkdir()
    reqs = []
    for i, data in enumerate(chunks):
        name = f"fake-part{i}"
        with zipfile.ZipFile(d / f"fake_part{i}-1.0-py3-none-any.whl", "w") as z:
            z.writestr(f"fake_part{i}/__init__.py", "")
            z.writestr(f"fake_part{i}/data/part.bin", data)
        reqs.append(f"{name}==1.0")
    return d, reqs


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECLLAMA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_assemble_verify_and_detect_corruption(tmp_path, cache):
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 500, b"c" * 10]
    d, reqs = _wheels(tmp_path, chunks)
    sha = hashlib.sha256(b"".join(chunks)).hexdigest()
    entry = registry.ModelEntry("fake", "draft", "fake.gguf", sha, tuple(reqs))
    assert registry.status(entry) == "missing"
    path = registry.assemble(entry, wheel_dir=d)
    assert path.read_bytes() == b"".join(chunks) and registry.status(entry) == "ok"
    with open(path, "r+b") as fh:  # a later bit flip / truncation
        fh.truncate(100)
    assert registry.status(entry) == "corrupt"
    registry.assemble(entry, wheel_dir=d)  # pull rebuilds it
    assert registry.status(entry) == "ok"


def test_wrong_checksum_leaves_nothing_usable(tmp_path, cache):
    d, reqs = _wheels(tmp_path, [b"GGUF" + b"x" * 100])
    entry = registry.ModelEntry("fake", "draft", "fake.gguf", "0" * 64, tuple(reqs))
    with pytest.raises(ModelError, match="sha256"):
        registry.assemble(entry, wheel_dir=d)
    assert registry.status(entry) == "missing"
    assert not list((cache / "models").glob("*.partial")) and not list((cache / "models").glob("specllama-pull-*"))


def test_manifest_lists_the_default_pair_with_checksums():
    models, pairs = registry.manifest()
    t, d = pairs["default"]["target"], pairs["default"]["draft"]
    assert models[t].sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert models[d].sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert len(models[t].parts) == 22 and len(models[d].parts) == 6
    assert all(len(m.sha256) == 64 for m in models.values())


def test_resolve_paths_names_and_missing(cache, tmp_path):
    assert registry.resolve("/some/file.gguf", "target") == "/some/file.gguf"
    assert registry.resolve(None, "target") is None
    with pytest.raises(ModelError, match="pull"):
        registry.resolve("qwen2.5-coder-1.5b-instruct-q4_k_m", "target")
    with pytest.raises(ModelError, match="pull"):
        registry.resolve("default", "target")
