"""RULER's task templates, answer prefixes and generation lengths.

The texts are RULER's (NVIDIA/RULER, ``scripts/data/synthetic/constants.py``, Apache-2.0), as
shipped in ``nvidia-long-context-eval`` 26.3, typos included ("assgined"), so scores compare with
published RULER numbers. RULER appends ``answer_prefix`` after the model's chat template; here it
opens the assistant turn (see :mod:`specllama.eval.sample`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    """A RULER task template split around its ``{context}`` slot.

    Attributes:
        head: instructions before the context (may hold ``{type_needle_v}``...).
        tail: text after the context, with the question (``{query}``...).
        answer_prefix: start of the answer, after the chat template.
        max_new_tokens: RULER's ``tokens_to_generate``.
    """

    head: str
    tail: str
    answer_prefix: str
    max_new_tokens: int

    def render(self, **kw) -> tuple[str, str, str]:
        """``(head, tail, answer_prefix)`` with the placeholders filled."""
        return self.head.format(**kw), self.tail.format(**kw), self.answer_prefix.format(**kw)

    def full(self, context: str, **kw) -> str:
        """RULER's ``template + answer_prefix`` as one string (its 'base' model template)."""
        head, tail, prefix = self.render(**kw)
        return head + context + tail + prefix


NIAH = Template(
    head="Some special magic {type_needle_v} are hidden within the following text. Make sure to "
         "memorize it. I will quiz you about the {type_needle_v} afterwards.\n",
    tail="\nWhat are all the special magic {type_needle_v} for {query} mentioned in the provided text?",
    answer_prefix=" The special magic {type_needle_v} for {query} mentioned in the provided text are",
    max_new_tokens=128,
)

VARIABLE_TRACKING = Template(
    head="Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n",
    tail="\nQuestion: Find all variables that are assigned the value {query} in the text above.",
    answer_prefix=" Answer: According to the chain(s) of variable assignment in the text above, {num_v} "
                  "variables are assgined the value {query}, they are: ",
    max_new_tokens=30,
)

COMMON_WORDS = Template(
    head="Below is a numbered list of words. In these words, some appear more often than others. "
         "Memorize the ones that appear most often.\n",
    tail="\nQuestion: What are the 10 most common words in the above list?",
    answer_prefix=" Answer: The top 10 words that appear most often in the list are:",
    max_new_tokens=120,
)

FREQ_WORDS = Template(
    head="Read the following coded text and track the frequency of each coded word. Find the three "
         "most frequently appeared coded words. ",
    tail="\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the "
         "three most frequently appeared words in the above coded text?",
    answer_prefix=" Answer: According to the coded text above, the three most frequently appeared words are:",
    max_new_tokens=50,
)

QA = Template(
    head="Answer the question based on the given documents. Only give me the answer and do not "
         "output any other words.\n\nThe following are given documents.\n\n",
    tail="\n\nAnswer the question based on the given documents. Only give me the answer and do not "
         "output any other words.\n\nQuestion: {query}",
    answer_prefix=" Answer:",
    max_new_tokens=32,
)


def singular(t: Template) -> Template:
    """RULER's rewording when one value is asked for: 'Some ... are all' -> 'A ... is'.

    Applied, as in RULER, to the whole template text in the same order of replacements.
    """
    def fix(s: str) -> str:
        return (s.replace("Some", "A").replace("are all", "is").replace("are", "is")
                .replace("answers", "answer"))

    return Template(fix(t.head), fix(t.tail), fix(t.answer_prefix), t.max_new_tokens)
