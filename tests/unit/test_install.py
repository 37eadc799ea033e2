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


class _Stop(Exception):
    pass


def _no_build(install, monkeypatch, stamp=None, nvcc="/opt/cuda/bin/nvcc"):
    """Stub out everything that would touch the network, the compiler or the installed package."""
    calls = {}
    monkeypatch.setattr(install, "installed_stamp", lambda: {"version": install.LLAMA_CPP_PYTHON,
                                                             "stamp": stamp})
    monkeypatch.setattr(install, "find_nvcc", lambda: nvcc)
    monkeypatch.setattr(install, "nvcc_version", lambda _: "Cuda compilation tools, release 13.0, V13.0.88")
    monkeypatch.setattr(install, "cpu_flags", lambda: {"avx", "avx2"})

    def fetch():
        calls["built"] = True
        raise _Stop

    monkeypatch.setattr(install, "fetch_sdist", fetch)
    return calls


def test_cuda_without_nvcc_is_one_clear_line(install, monkeypatch, capsys):
    _no_build(install, monkeypatch, nvcc=None)
    with pytest.raises(SystemExit) as exc:
        install.build_llama(True, False)
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nvcc" in err[0] and err[0].startswith("[install] error:")


def test_cuda_architectures_from_the_environment(install, monkeypatch):
    monkeypatch.setattr(install, "cpu_flags", lambda: set())
    monkeypatch.delenv("CMAKE_CUDA_ARCHITECTURES", raising=False)
    plain = install.cmake_args(cuda=True)
    monkeypatch.setenv("CMAKE_CUDA_ARCHITECTURES", "90")
    sm90 = install.cmake_args(cuda=True)
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in sm90.split() and "ARCHITECTURES" not in plain
    assert "ARCHITECTURES" not in install.cmake_args(cuda=False)  # ignored for a CPU build
    assert install.build_key(plain) != install.build_key(sm90)


def test_build_key_includes_the_cuda_toolkit_and_keeps_cpu_keys(install, monkeypatch):
    cargs = install.cmake_args(cuda=True)
    assert install.build_key(cargs, "release 12.8") != install.build_key(cargs, "release 13.0")
    assert install.build_key(cargs, "") == install.build_key(cargs)  # CPU keys unchanged by the toolkit


def test_a_cpu_build_is_never_reused_for_cuda(install, monkeypatch):
    monkeypatch.setattr(install, "cpu_flags", lambda: {"avx", "avx2"})
    cpu_key = install.build_key(install.cmake_args(cuda=False))
    calls = _no_build(install, monkeypatch, stamp={"key": cpu_key, "cmake_args": "x"})
    with pytest.raises(_Stop):
        install.build_llama(True, False)
    assert calls.get("built")
    install.build_llama(False, False)  # the same CPU key: nothing to do


def test_an_installed_cuda_build_is_kept_by_a_plain_rerun(install, monkeypatch, capsys):
    monkeypatch.setattr(install, "cpu_flags", lambda: {"avx", "avx2"})
    monkeypatch.delenv("CMAKE_CUDA_ARCHITECTURES", raising=False)
    key = install.build_key(install.cmake_args(cuda=True), "Cuda compilation tools, release 13.0, V13.0.88")
    calls = _no_build(install, monkeypatch, stamp={"key": key, "cuda": True})
    install.build_llama(None, False)
    assert not calls and "keeping the installed CUDA build" in capsys.readouterr().err
    with pytest.raises(_Stop):  # --cpu replaces it
        install.build_llama(False, False)


def test_find_nvcc_honours_cudacxx_and_cuda_home(install, monkeypatch, tmp_path):
    nvcc = tmp_path / "bin" / "nvcc"
    nvcc.parent.mkdir()
    nvcc.write_text("")
    monkeypatch.setattr(install.shutil, "which", lambda _: None)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setenv("CUDACXX", str(nvcc))
    assert install.find_nvcc() == str(nvcc)
    monkeypatch.setenv("CUDACXX", str(tmp_path / "missing"))
    assert install.find_nvcc() is None
    monkeypatch.delenv("CUDACXX")
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    assert install.find_nvcc() == str(nvcc)
