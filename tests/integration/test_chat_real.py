"""`specllama chat` in a pseudo-terminal on the real default pair: one short scenario.

/read a ~3K-token document with a needle, ask for the needle, ask a follow-up whose /stats shows
that only the new tokens were prefilled, interrupt a long answer with Ctrl-C, leave with /bye.
"""

import os
import re
import sys

import pytest

pexpect = pytest.importorskip("pexpect")

SENTENCES = [
    "The grass is green and the sky is blue.", "The sun is yellow and it rises in the east.",
    "Rivers flow down from the mountains into the sea.", "A small village sits at the edge of the forest.",
    "Farmers bring apples and cherries to the market every Tuesday.", "The old harbor is quiet at night.",
    "Children play near the fountain in the main square.", "The library opens at nine in the morning.",
]
NEEDLE = "The secret code for the vault is 7481926."
PREFILL = re.compile(r"target: prefilled (\d+) new tokens \((\d+) reused\)")


def haystack(n_sentences: int = 300) -> str:
    """About 3,050 Qwen2.5 tokens with the needle in the middle."""
    out = [SENTENCES[(i * 5 + i // 8) % len(SENTENCES)] for i in range(n_sentences)]
    out.insert(n_sentences // 2, NEEDLE)
    return " ".join(out)


@pytest.mark.integration
def test_chat_repl_reads_answers_reuses_and_interrupts(real_pair, threads, tmp_path):
    target, draft = real_pair
    doc = tmp_path / "vault.txt"
    doc.write_text(haystack())
    c = pexpect.spawn(sys.executable, ["-m", "specllama", "chat", "-m", target, "-md", draft, "-t", str(threads),
                                       "-n", "24"],
                      encoding="utf-8", timeout=600, dimensions=(50, 200), env=dict(os.environ))
    try:
        c.expect_exact(">>> ")
        c.sendline(f"/read {doc}")
        c.expect(r"attached vault.txt \((\d+) tokens\)")
        assert 2500 <= int(c.match.group(1)) <= 3500
        c.expect_exact(">>> ")

        c.sendline("What is the secret code for the vault? Answer with the number only.")
        c.expect(r"compressed document vault.txt \((\d+) -> (\d+) tokens\)")
        c.expect_exact(">>> ")
        assert "7481926" in c.before

        c.sendline("/stats")
        c.expect(PREFILL)
        first_new = int(c.match.group(1))
        assert int(c.match.group(2)) == 0 and 900 <= first_new <= 1024
        c.expect_exact(">>> ")

        c.sendline("Which day do farmers come to the market? One word.")
        c.expect_exact(">>> ")
        assert "tuesday" in c.before.lower()
        c.sendline("/stats")
        c.expect_exact("draft: not run")  # nothing new to compress: the draft stays idle
        c.expect(PREFILL)
        new, reused = int(c.match.group(1)), int(c.match.group(2))
        assert reused >= first_new and new <= 60  # only the new turn was prefilled
        c.expect_exact(">>> ")

        c.sendline("/set n 400")
        c.expect_exact(">>> ")
        question = "Write a long story about the village, the harbor and the farmers."
        c.sendline(question)
        c.expect_exact(question)
        c.expect(r"\w+[ ,.]+\w+[ ,.]+\w+[ ,.]+\w+")  # the answer is streaming
        c.sendintr()
        c.expect_exact("(interrupted; the conversation is kept)", timeout=60)
        c.expect_exact(">>> ")

        c.sendline("/bye")
        c.expect(pexpect.EOF)
    finally:
        c.close()
    assert c.exitstatus == 0
