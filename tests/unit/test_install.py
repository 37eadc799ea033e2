"""scripts/install.py: the CMake flags it derives (CPU, AMX off, CUDA) and its build key."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def install(monkeypatch):
    spec = importlib.util.spec_from_file_location("specllama_install", ROOT / "scripts" / "install.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod.sys, "platform", "linux")
    monkeypatch.setattr(mod.platform, "machine", lambda: "x86_64")
    return mod


AMX_XEON = {"avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
            "amx_int8", "amx_bf16", "avx_vnni"}


def test_x86_flags_follow_cpuinfo_and_amx_is_always_off(install, monkeypatch):
    monkeypatch.setattr(install, "cpu_flags", lambda: AMX_XEON)
    args = install.cmake_args(cuda=False).split()
    assert "-DGGML_NATIVE=OFF" in args  # -march=native would enable AMX (crashes, llama.cpp #20824)
    assert "-DGGML_AVX512=ON" in args and "-DGGML_AVX_VNNI=ON" in args
    assert "-DGGML_AVX512_VBMI=OFF" in args  # not in the flags above
    for amx in ("TILE", "INT8", "BF16"):
        assert f"-DGGML_AMX_{amx}=OFF" in args
    assert not any("CUDA" in a for a in args)


def test_old_cpu_gets_no_avx512(install, monkeypatch):
    monkeypatch.setattr(install, "cpu_flags", lambda: {"avx", "avx2", "fma", "f16c"})
    args = install.cmake_args(cuda=False).split()
    assert "-DGGML_AVX2=ON" in args and "-DGGML_AVX512=OFF" in args and "-DGGML_BMI2=OFF" in args


def test_cuda_build_adds_ggml_cuda_and_changes_the_build_key(install, monkeypatch):
    monkeypatch.setattr(install, "cpu_flags", lambda: AMX_XEON)
    cpu, gpu = install.cmake_args(cuda=False), install.cmake_args(cuda=True)
    assert gpu.split()[-1] == "-DGGML_CUDA=on" and gpu.startswith(cpu)
    assert install.build_key(cpu) != install.build_key(gpu)  # a CUDA request rebuilds


def test_non_x86_keeps_llama_cpp_defaults(install, monkeypatch):
    monkeypatch.setattr(install.sys, "platform", "darwin")
    monkeypatch.setattr(install.platform, "machine", lambda: "arm64")
    assert install.cmake_args(cuda=False) == "-DLLAVA_BUILD=OFF"


def test_patch_series_files_exist(install):
    paths = install.patch_series()
    assert paths and all(p.is_file() for p in paths)
