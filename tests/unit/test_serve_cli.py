"""``specllama serve`` as a user starts it: one-line errors, loopback, a bounded load test, clean stop."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest

from specllama.serve import loadtest


def env() -> dict:
    e = dict(os.environ, SPECLLAMA_CACHE="/tmp/specllama-test-no-models")
    for k in ("SPECLLAMA_DEBUG", "SPECLLAMA_API_KEY", "SPECLLAMA_UPSTREAM_API_KEY"):
        e.pop(k, None)
    return e


def sl(*args):
    return subprocess.run([sys.executable, "-m", "specllama", *args], capture_output=True, env=env(), timeout=120)


def one_line_error(proc, needle):
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("specllama: error: "), err
    assert needle in err, err
    assert proc.stdout == b""


@pytest.fixture(scope="module")
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


@pytest.mark.parametrize("args,needle", [
    (["--port", "70000"], "--port must be in"),
    (["--queue-size", "0"], "--queue-size must be >= 1"),
    (["--upstream", "ftp://x/v1"], "--upstream must be an http(s) URL"),
    (["--upstream", "http://127.0.0.1:9/v1"], "-m is not used with --upstream"),
    (["--method", "specpc", "-md", None], "needs a draft"),
    (["--port", "BUSY"], "cannot listen on 127.0.0.1"),
    (["--budget", "0"], "--budget must be >= 1"),
])
def test_startup_errors(tiny_path, tiny_draft_path, busy_port, args, needle):
    if None in args:  # no draft at all
        args = [a for a in args if a not in (None, "-md")]
    args = [{"BUSY": str(busy_port)}.get(a, a) for a in args]
    one_line_error(sl("serve", "-m", tiny_path, "-t", "1", "--port", "0", *args), needle)


def test_upstream_needs_a_draft():
    one_line_error(sl("serve", "--upstream", "http://127.0.0.1:9/v1", "-md", "/nonexistent.gguf"),
                   "draft file not found")


def test_loadtest_refuses_other_hosts(capsys):
    with pytest.raises(SystemExit, match="not a loopback address"):
        loadtest.main(["--url", "http://192.0.2.1:8080/v1", "--requests", "1"])
    with pytest.raises(SystemExit):
        loadtest.main(["--clients", "0"])


class Started:
    """A ``specllama serve`` subprocess; its stderr is read on a thread."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "specllama", "serve", *args], env=env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.url = None
        while self.url is None:
            line = self.lines.get(timeout=60)
            if " on http://" in line:
                self.url = line.split(" on ")[1].split(" ")[0]
            assert "error" not in line, line

    def _read(self):
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def stop(self, sig=signal.SIGINT) -> tuple[int, str]:
        self.proc.send_signal(sig)
        out = self.proc.stdout.read()  # stderr belongs to the reader thread: never read it here
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return self.proc.returncode, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_loadtest_and_clean_stop(tiny_path, tiny_draft_path, sig):
    srv = Started("-m", tiny_path, "-md", tiny_draft_path, "-t", "2", "--port", "0", "--budget", "96", "--quiet")
    try:
        assert srv.url.startswith("http://127.0.0.1:") and srv.url.endswith("/v1")  # loopback by default
        assert httpx.get(srv.url[:-3] + "/health").json()["status"] == "ok"
        if sig == signal.SIGINT:
            rc = loadtest.main(["--url", srv.url, "--clients", "8", "--requests", "24", "--words", "60",
                                "--max-tokens", "4", "--deadline", "120", "--json"])
            assert rc == 0
            h = httpx.get(srv.url[:-3] + "/health").json()
            assert h["served"] == 24 and h["failed"] == 0 and h["rejected"] == 0
    finally:
        rc, out = srv.stop(sig)
    assert rc == 0, "".join(srv.err)
    assert out == ""  # only model text may go to stdout, and a server prints none
    assert srv.err[-1] == "specllama: stopped\n"
    assert not any("Traceback" in e for e in srv.err)
