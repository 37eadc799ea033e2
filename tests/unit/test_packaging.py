"""Every Python package in the tree is listed in pyproject.toml (else a real install drops it)."""

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in (ROOT / "specllama").rglob("__init__.py")}
    assert found - listed == set()
    assert "specllama._models" in listed and (ROOT / "models" / "manifest.toml").exists()


def test_public_api_imports():
    import specllama

    assert callable(specllama.generate) and callable(specllama.compress)
    assert "specpc" in specllama.method_names()
