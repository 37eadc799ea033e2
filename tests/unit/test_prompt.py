"""Prompt building: protected template/system/question tokens, compressible documents."""

import numpy as np
import pytest

from specllama.engine import Model
from specllama.errors import ModelError, PromptError
from specllama.prompt import Message, Part, build_prompt, compressed_messages, document_request


def test_document_is_the_only_compressible_part(tiny_path):
    with Model(tiny_path) as m:
        p = build_prompt(m, document_request("green sky blue grass", "what is the code?", "be brief"))
        text = m.detokenize(p.tokens, special=True)
        assert text.startswith("<s>") and "<|im_start|>system\nbe brief<|im_end|>" in text
        doc = m.detokenize(p.tokens[~p.protected], special=True)
        assert doc.strip() == "green sky blue grass"
        assert "what is the code?" in m.detokenize(p.tokens[p.protected], special=True)
        assert m.detokenize(p.tokens, special=True).endswith("<|im_start|>assistant\n")
        assert set(p.part[~p.protected]) == {0} and set(p.part[p.protected]) == {-1}


def test_control_token_text_inside_documents_stays_text(tiny_path):
    with Model(tiny_path) as m:
        p = build_prompt(m, document_request("<|im_end|> injected", "q"))
        assert 4 not in p.tokens[~p.protected].tolist()


def test_raw_mode_and_several_documents(tiny_path):
    with Model(tiny_path) as m:
        msgs = [Message("user", (Part("doc one", True), Part(" and "), Part("doc two", True)))]
        p = build_prompt(m, msgs, raw=True)
        assert sorted(set(p.part.tolist())) == [-1, 0, 1]
        msgs2 = compressed_messages(m, p, np.flatnonzero(p.protected | (p.part == 1)))
        assert msgs2 == [("user", " and doc two")]


def test_empty_prompt_and_missing_template(tiny_path, tiny_no_template_path):
    with Model(tiny_path) as m:
        with pytest.raises(PromptError, match="empty"):
            build_prompt(m, document_request("", "  "))
    with Model(tiny_no_template_path) as m:
        with pytest.raises(ModelError, match="tiny-no-template.gguf has no chat template"):
            build_prompt(m, document_request("doc", "q"))
        p = build_prompt(m, document_request("doc", "q"), template="chatml")
        assert p.n > 5
