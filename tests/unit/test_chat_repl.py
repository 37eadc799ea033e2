"""The chat REPL on tiny models: commands, multiline input, Ctrl-C, progress, non-TTY and a pty."""

import io
import os
import signal
import subprocess
import sys
import threading

import pytest

from specllama.chat.commands import parse, set_changes
from specllama.chat.progress import ProgressBar, format_bar, terminal_progress
from specllama.chat.repl import Repl, run_interruptible
from specllama.chat.session import ChatSession
from specllama.errors import ConfigError

DOC = ("the green sky and the blue grass by the river. " * 40) + "the secret code is magic. "


class Script:
    """``read_line`` from a list; exception classes in it are raised (Ctrl-C, Ctrl-D)."""

    def __init__(self, *items):
        self.items = list(items)
        self.prompts = []

    def __call__(self, prompt):
        self.prompts.append(prompt)
        if not self.items:
            raise EOFError
        item = self.items.pop(0)
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item
        return item


@pytest.fixture()
def session(tiny_runtime):
    s = ChatSession(tiny_runtime, {"budget": 300, "window": 16, "kernel": 8, "n_predict": 5})
    yield s
    s.close()


def repl(session, *items, stats=False):
    out, err = io.StringIO(), io.StringIO()
    r = Repl(session, Script(*items), out, err, stats=stats, interruptible=lambda fn, _stop: fn())
    return r, out, err


def test_parse_commands_and_messages():
    assert parse("/read  my file.txt ").arg == "my file.txt"
    assert parse("/SET temp 0.5").name == "/set"
    assert parse("hello /read") is None and parse("//not a command") is None
    assert set_changes("budget", "512") == {"budget": 512, "keep": None}
    assert set_changes("n", "-1") == {"n_predict": -1}
    with pytest.raises(ConfigError, match="integer"):
        set_changes("budget", "lots")
    with pytest.raises(ConfigError, match="knows"):
        set_changes("colour", "blue")


def test_a_conversation_streams_answers_to_stdout_only(session, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text(DOC)
    r, out, err = repl(session, f"/read {doc}", "what is the secret code?", "/stats", "and then?", "/bye",
                       stats=True)
    assert r.run() == 0
    e = err.getvalue()
    assert "attached doc.txt" in e and "compressed document doc.txt" in e
    assert e.count("specllama: prefilled") == 2  # --stats after each answer
    assert "target: prefilled" in e and "TTFT" in e
    assert out.getvalue().count("\n") == 2  # two answers, nothing else
    assert "specllama" not in out.getvalue() and len(session.conv.turns) == 2


def test_multiline_input_is_one_message_and_never_a_command(session):
    r, out, err = repl(session, '"""', "/read is not a command here", 'second line"""', "/bye")
    assert r.run() == 0
    assert session.conv.turns[0].question.text == "/read is not a command here\nsecond line"
    assert r.read_line.prompts[:3] == [">>> ", "... ", "... "]
    r2, _, _ = repl(session, '"""one line"""')
    assert r2.read_message() == ("one line", True)


def test_ctrl_c_twice_at_an_empty_prompt_exits_130(session):
    r, out, err = repl(session, KeyboardInterrupt, KeyboardInterrupt)
    assert r.run() == 130
    assert "Ctrl-C again" in err.getvalue()


def test_ctrl_c_then_typing_disarms_the_exit(session):
    r, out, err = repl(session, KeyboardInterrupt, "hello", KeyboardInterrupt, EOFError)
    assert r.run() == 0
    assert len(session.conv.turns) == 1


def test_ctrl_c_during_an_answer_arms_the_exit(session):
    session.configure(n_predict=50)
    r, out, err = repl(session)

    def fn(emit):
        seen = []

        def stop_after_two(piece):
            emit(piece)
            seen.append(piece)
            if len(seen) == 2:
                session.interrupt()  # what the SIGINT handler does

        return session.ask("tell me a story", stop_after_two)

    st = r.turn(fn)
    assert st.stop == "interrupted" and r.armed
    assert "(interrupted; the conversation is kept)" in err.getvalue()
    r.read_line = Script(KeyboardInterrupt)
    assert r.run() == 130


def test_command_mistakes_are_one_line_and_the_chat_goes_on(session):
    r, out, err = repl(session, "/set budget lots", "/read /no/such/file.txt", "/frobnicate", "/set method nope",
                       "/set stats maybe", "/regen", "/set keep 0.5", "/set stats on", "/show", "/help", "/exit")
    assert r.run() == 0
    lines = err.getvalue().splitlines()
    errors = [ln for ln in lines if ln.startswith("specllama: error: ")]
    assert len(errors) == 6, lines
    assert "method: specpc keep 0.5" in lines and "stats on" in lines
    assert any(ln.startswith("method ") for ln in lines) and any("/read FILE" in ln for ln in lines)
    assert out.getvalue() == ""


def test_progress_bar_shows_tokens_rate_and_eta():
    assert format_bar("draft prefill", 0, 1000, 0.0, width=10) == "draft prefill [..........] 0/1000 tok"
    line = format_bar("target prefill", 250, 1000, 0.5, width=10)
    assert line == "target prefill [##........] 250/1000 tok | 500 t/s | ETA 2s"
    assert "ETA 2m30s" in format_bar("x", 100, 1600, 10.0)
    clock = iter([0.0, 0.0, 0.05, 1.0, 2.0])
    buf = io.StringIO()
    bar = ProgressBar("p", 300, buf, interval=0.1, clock=lambda: next(clock))
    bar.update(100)  # throttled (0.05 s after the first draw)
    bar.update(200)
    bar.update(300)
    bar.close()
    text = buf.getvalue()
    assert "0/300" in text and "100/300" not in text and "200/300" in text and "300/300" in text
    assert text.endswith("\r\x1b[K")
    assert terminal_progress(io.StringIO())("x", 10_000) is None  # not a terminal: no bar


def test_run_interruptible_routes_sigint_to_the_callback():
    hits = []
    done = threading.Event()

    def work():
        os.kill(os.getpid(), signal.SIGINT)
        done.wait(5)
        return "finished"

    def on_int():
        hits.append(1)
        done.set()

    assert run_interruptible(work, on_int) == "finished" and hits == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def sl(*args, stdin=None):
    env = dict(os.environ, SPECLLAMA_CACHE="/tmp/specllama-test-no-models")
    env.pop("SPECLLAMA_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "specllama", "chat", *args], input=stdin, capture_output=True,
                          env=env, timeout=120)


def test_non_tty_runs_one_turn_like_run(tiny_path, tiny_draft_path):
    p = sl("-m", tiny_path, "-md", tiny_draft_path, "-t", "2", "-n", "4", "--budget", "200", "--window", "16",
           "--question", "what is the code?", "--stats", stdin=DOC.encode())
    assert p.returncode == 0, p.stderr
    err = p.stderr.decode().splitlines()
    assert err[0].startswith("specllama: compressed document stdin") and err[-1].startswith("specllama: prefilled")
    assert p.stdout.endswith(b"\n") and b"specllama" not in p.stdout


def test_non_tty_errors_are_one_line(tiny_path, tiny_no_template_path):
    p = sl("-m", tiny_no_template_path, "-t", "2", stdin=b"hello")
    err = p.stderr.decode()
    assert p.returncode == 2 and err.count("\n") == 1 and "tiny-no-template.gguf" in err
    assert "--chat-template" in err and "Traceback" not in err
    p = sl("-m", tiny_path, "-t", "2", "--raw", stdin=b"hello")
    assert p.returncode == 2 and "--raw" in p.stderr.decode()


def test_repl_in_a_pseudo_terminal(tiny_path, tiny_draft_path, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    doc = tmp_path / "doc.txt"
    doc.write_text(DOC)
    c = pexpect.spawn(sys.executable, ["-m", "specllama", "chat", "-m", tiny_path, "-md", tiny_draft_path,
                                       "-t", "2", "-n", "-1", "--budget", "200", "--window", "16"],
                      encoding="utf-8", timeout=60, env=dict(os.environ, SPECLLAMA_CACHE="/nonexistent"))
    try:
        c.expect_exact(">>> ")
        c.sendline(f"/read {doc}")
        c.expect_exact("attached doc.txt")
        c.expect_exact(">>> ")
        c.sendline("tell me everything")
        c.expect("compressed document doc.txt")
        # The random tiny model may end its answer (end-of-generation token) before the Ctrl-C
        # lands; ask again until one answer is interrupted.
        for _attempt in range(6):
            c.sendintr()
            if c.expect_exact(["(interrupted", ">>> "]) == 0:
                break
            c.sendline("and then?")
        else:
            pytest.fail("no answer could be interrupted")
        c.expect_exact(">>> ")
        c.sendline("/stats")  # Ctrl-C may land in the prefill (a loaded machine) or in the answer
        c.expect([r"target: prefilled \d+ new tokens \(\d+ reused\)", "interrupted before its answer"])
        c.expect_exact(">>> ")
        c.sendline("/bye")
        c.expect(pexpect.EOF)
    finally:
        c.close()
    assert c.exitstatus == 0
