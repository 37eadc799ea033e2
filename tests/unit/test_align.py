"""Text alignment between two tokenizers (``select.align``), on hand-made token pieces."""

import numpy as np
import pytest

from specllama.select.align import (CONTROL, NORMAL, UNKNOWN, AlignmentError, align, anchor_chunks, range_max,
                                    token_spans)


def spans(text: str, pieces, kinds=None):
    kinds = [NORMAL] * len(pieces) if kinds is None else kinds
    return token_spans(text.encode(), [p.encode() if isinstance(p, str) else p for p in pieces], kinds).tolist()


def test_pieces_that_spell_the_text():
    assert spans("hello world", ["hel", "lo", " world"]) == [[0, 3], [3, 5], [5, 11]]


def test_the_space_a_sentencepiece_tokenizer_inserts_is_not_text():
    assert spans("hello", [" hel", "lo"]) == [[0, 3], [3, 5]]
    assert spans("<s>x", ["<s>", " ", "x"], [CONTROL, NORMAL, NORMAL]) == [[0, 3], [3, 3], [3, 4]]


def test_control_tokens_spelled_out_or_added():
    # a BOS the tokenizer added spells nothing; a template's control token spells its own text
    assert spans("<|im_start|>hi", ["<s>", "<|im_start|>", "hi"], [CONTROL, CONTROL, NORMAL]) == \
        [[0, 0], [0, 12], [12, 14]]


def test_pieces_that_split_a_character_cover_all_of_it():
    # "é" is two bytes, "✓" three; byte-fallback pieces hold parts of them
    assert spans("aé", [b"a\xc3", b"\xa9"]) == [[0, 3], [1, 3]]
    assert spans("✓b", [b"\xe2", b"\x9c", b"\x93b"]) == [[0, 3], [0, 3], [0, 4]]


def test_unknown_tokens_cover_the_text_up_to_the_next_piece():
    assert spans("a ö b", ["a", "<unk>", " b"], [NORMAL, UNKNOWN, NORMAL]) == [[0, 1], [1, 4], [4, 6]]
    assert spans("a ö", ["a", "<unk>"], [NORMAL, UNKNOWN]) == [[0, 1], [1, 4]]
    assert spans("x<unk>y", ["x", "<unk>", "y"], [NORMAL, UNKNOWN, NORMAL]) == [[0, 1], [1, 6], [6, 7]]
    # two unknowns in a row share the gap; an empty piece after them joins it
    assert spans("aöüb", ["a", "", "", "b"], [NORMAL, UNKNOWN, UNKNOWN, NORMAL]) == \
        [[0, 1], [1, 5], [1, 5], [5, 6]]


@pytest.mark.parametrize("text,pieces,offset", [
    ("abc", ["a", "c"], 1),          # a character dropped
    ("abc", ["a", "", "c"], 1),      # a token that spells nothing (not a control token)
    ("abc", ["ab"], 2),              # text left over
    ("ABC", ["abc"], 0),             # characters changed (a normalising tokenizer)
    ("aöb", ["a", "<unk>", "c"], 1),  # nothing after the unknown token matches
])
def test_text_that_does_not_round_trip_is_refused(text, pieces, offset):
    kinds = [UNKNOWN if p == "<unk>" else NORMAL for p in pieces]
    with pytest.raises(AlignmentError) as e:
        spans(text, pieces, kinds)
    assert e.value.offset == offset


def test_chunks_map_message_text_exactly_and_template_text_as_a_whole():
    t = b"<|im_start|>user\nDOC text\n\nQ?<|im_end|>\n<|im_start|>assistant\n"
    d = b"<bos><start_of_turn>user\nDOC text\n\nQ?<end_of_turn>\n<start_of_turn>model\n"
    c = anchor_chunks(t, d, [b"DOC text", b"\n\nQ?"])
    rows = [(t[a:b], d[x:y], bool(e)) for a, b, x, y, e in zip(c.t0, c.t1, c.d0, c.d1, c.exact)]
    assert (b"DOC text", b"DOC text", True) in rows and (b"\n\nQ?", b"\n\nQ?", True) in rows
    # template text: its common prefix and suffix map exactly, the differing middle as a whole
    assert rows[:3] == [(b"<", b"<", True), (b"|im_start|", b"bos><start_of_turn", False), (b">user\n", b">user\n", True)]
    assert c.t0[0] == 0 and c.t1[-1] == len(t) and c.d1[-1] == len(d)
    assert np.all(c.t0[1:] == c.t1[:-1]) and np.all(c.d0[1:] == c.d1[:-1])
    # a short instruction found inside the other side's document cannot pull the document out of place
    t = b"<sys>be brief</sys><u>DOC: be brief here</u>"
    d = b"<u>DOC: be brief here</u>"
    c = anchor_chunks(t, d, [b"be brief", b"DOC: be brief here"], [False, True])
    rows = [(t[a:b], d[x:y], bool(e)) for a, b, x, y, e in zip(c.t0, c.t1, c.d0, c.d1, c.exact)]
    assert (b"DOC: be brief here", b"DOC: be brief here", True) in rows
    assert not any(e and tt == b"be brief" for tt, _, e in rows)
    # an anchor the template stripped is found without its whitespace; one not found is skipped
    c = anchor_chunks(b"[Q?]", b"<Q?>", [b"  Q?\n", b"zzz"])
    assert [(bool(e), b - a) for a, b, e in zip(c.t0, c.t1, c.exact)] == [(False, 1), (True, 2), (False, 1)]


def _random_split(rng, text: bytes) -> list[bytes]:
    cuts = sorted(set(rng.integers(1, len(text), size=len(text) // 3).tolist()))
    edges = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(edges, edges[1:])]


def _brute_carry(t_sp, d_sp, scores):
    out = []
    for s, e in t_sp:
        hit = [scores[i] for i, (a, b) in enumerate(d_sp) if a < e and b > s]
        out.append(max(hit))
    return np.array(out, dtype=np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_carry_is_the_max_over_overlapping_draft_tokens(seed):
    rng = np.random.default_rng(seed)
    words = ["the", " green", " sky", " ✓", " héllo", " 東京", " 🙂", "\n", " code", " 42"]
    text = "".join(rng.choice(words, size=40)).encode()
    t_pieces, d_pieces = _random_split(rng, text), _random_split(rng, text)  # splits inside characters too
    t_sp = token_spans(text, t_pieces, [NORMAL] * len(t_pieces))
    d_sp = token_spans(text, d_pieces, [NORMAL] * len(d_pieces))
    scores = rng.random(len(d_pieces)).astype(np.float32)
    al = align(text, t_sp, text, d_sp, anchor_chunks(text, text, [text]))
    np.testing.assert_array_equal(al.carry(scores), _brute_carry(t_sp.tolist(), d_sp.tolist(), scores))
    with pytest.raises(ValueError):
        al.carry(scores[:-1])


def test_template_tokens_take_the_whole_opposite_chunk_and_zero_width_tokens_their_neighbours():
    t = b"<A>doc<B>"
    d = b"[a]doc[bb]"
    t_sp = token_spans(t, [b"<s>", b"<A>", b"do", b"c", b"<B>"], [CONTROL, CONTROL, NORMAL, NORMAL, CONTROL])
    d_sp = token_spans(d, [b"[", b"a]", b"d", b"oc", b"[bb]"], [NORMAL] * 5)
    al = align(t, t_sp, d, d_sp, anchor_chunks(t, d, [b"doc"]))
    assert list(zip(al.lo.tolist(), al.hi.tolist())) == [(0, 2), (0, 2), (2, 4), (3, 4), (4, 5)]
    assert al.carry(np.array([5, 1, 2, 3, 4], np.float32)).tolist() == [5, 5, 3, 3, 4]


def test_range_max_matches_a_loop():
    rng = np.random.default_rng(0)
    x = rng.random(300).astype(np.float32)
    lo = rng.integers(0, 299, size=500)
    hi = np.minimum(300, lo + rng.integers(1, 120, size=500))
    assert range_max(x, lo, hi).tolist() == [float(x[a:b].max()) for a, b in zip(lo, hi)]
