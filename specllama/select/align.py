"""Carrying per-token scores from one tokenizer to another through the prompt text.

A draft whose vocabulary differs from the target's reads the same request as its own tokens. Both
token sequences spell out (almost) the same text, so each token covers a span of it:

* :func:`token_spans` matches a model's token pieces against the text it tokenized and gives each
  token its ``[start, end)`` byte span, widened to whole UTF-8 characters (a byte-fallback piece
  that holds part of a character covers that character);
* :func:`anchor_chunks` cuts the target's and the draft's texts into chunks that correspond: the
  message texts both contain verbatim (exact chunks, mapped byte for byte) and the chat-template
  text around them, which differs between the two templates (each such chunk maps as a whole);
* :func:`align` combines both into a :class:`TextAlignment`, whose :meth:`~TextAlignment.carry`
  gives every target token the max score over the draft tokens that overlap it.

Spans are compared in doubled coordinates (byte ``b`` -> ``2b``), in which a token that spells no
text (a BOS added by the tokenizer) occupies ``[2p, 2p + 1)``: every span is then non-empty, and a
zero-width token overlaps the token that starts where it sits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

NORMAL, CONTROL, UNKNOWN = 0, 1, 2
"""Token kinds for :func:`token_spans`: control tokens may spell no text (a BOS the tokenizer
added); an unknown token (``<unk>``) covers text that its piece does not spell."""


class AlignmentError(ValueError):
    """The token pieces do not spell the text they were made from (a character dropped or changed).

    Attributes:
        offset: character offset in the text where they part.
        expected: the text there; got: what the token's piece spells.
    """

    def __init__(self, offset: int, expected: str, got: str):
        self.offset, self.expected, self.got = offset, expected, got
        super().__init__(f"at character {offset} the text is {expected!r} but the token spells {got!r}")


def _snippet(text: bytes, pos: int, n: int = 16) -> str:
    return text[pos:pos + n].decode("utf-8", "replace")


def _char_offset(text: bytes, pos: int) -> int:
    return len(text[:pos].decode("utf-8", "ignore"))


def _match(text: bytes, pos: int, piece: bytes) -> int | None:
    """End of ``piece`` matched at ``pos``, allowing the one leading space a SentencePiece
    tokenizer inserts at the start of its input or after a control token; else None."""
    if text.startswith(piece, pos):
        return pos + len(piece)
    if piece[:1] == b" " and text[pos:pos + 1] != b" " and text.startswith(piece[1:], pos):
        return pos + len(piece) - 1
    return None


def token_spans(text: bytes, pieces: Sequence[bytes], kinds: Sequence[int]) -> np.ndarray:
    """Byte spans ``[n, 2]`` (int64, ``start <= end``) of ``n`` tokens in ``text``.

    Args:
        text: the UTF-8 text that was tokenized (all of it).
        pieces: each token's piece as bytes (control tokens spelled out, e.g. ``<|im_start|>``).
        kinds: ``[n]`` :data:`NORMAL`, :data:`CONTROL` or :data:`UNKNOWN` per token.

    A control token whose piece is not the text at hand (a BOS the tokenizer added) is zero-width;
    an unknown token covers the text up to where the next token's piece is found. Spans are widened
    to whole characters, so they never end inside a multi-byte character.

    Raises:
        AlignmentError: a piece that is neither the text at hand nor explained above (the
            tokenizer dropped or changed characters), or text left over after the last token.
    """
    n = len(pieces)
    spans = np.zeros((n, 2), dtype=np.int64)
    pos = 0
    pending: list[int] = []  # unknown tokens waiting for the next piece to say where they end
    for i, (piece, kind) in enumerate(zip(pieces, kinds)):
        if pending and not piece:
            pending.append(i)
            continue
        end = _match(text, pos, piece) if piece else pos
        if kind == UNKNOWN and (pending or not piece or end is None):
            pending.append(i)
            continue
        if pending:  # the unknown tokens cover at least one character, up to this piece
            step = max(1, len(text[pos:pos + 4].decode("utf-8", "ignore")[:1].encode()))
            at = text.find(piece, pos + step)
            if at < 0 and kind == CONTROL:
                pending.append(i)
                continue
            if at < 0:
                raise AlignmentError(_char_offset(text, pos), _snippet(text, pos),
                                     piece.decode("utf-8", "replace"))
            spans[pending] = (pos, at)
            pending, pos, end = [], at, at + len(piece)
        if end is None:
            if kind != CONTROL:
                raise AlignmentError(_char_offset(text, pos), _snippet(text, pos),
                                     piece.decode("utf-8", "replace"))
            end = pos  # a control token the tokenizer added: it spells no text
        spans[i] = (pos, end)
        pos = end
    if pending:
        spans[pending] = (pos, len(text))
        pos = len(text)
    if pos != len(text):
        raise AlignmentError(_char_offset(text, pos), _snippet(text, pos), "")
    return _whole_chars(text, spans)


def _whole_chars(text: bytes, spans: np.ndarray) -> np.ndarray:
    """Widen byte spans to UTF-8 character boundaries (continuation bytes are ``10xxxxxx``)."""
    b = np.frombuffer(text, dtype=np.uint8)
    if len(b) == 0 or not np.any((b & 0xC0) == 0x80):
        return spans
    idx = np.arange(len(b) + 1)
    head = np.ones(len(b) + 1, dtype=bool)
    head[:-1] = (b & 0xC0) != 0x80
    down = np.maximum.accumulate(np.where(head, idx, 0))  # char start at or before each byte
    up = np.minimum.accumulate(np.where(head, idx, len(b))[::-1])[::-1]  # char start at or after
    s, e = spans[:, 0], spans[:, 1]
    return np.stack([down[s], np.where(e > s, up[e], down[s])], axis=1)


@dataclass(frozen=True)
class Chunks:
    """Corresponding chunks of two texts, ``[k]`` each, in order and covering both texts.

    ``t0, t1``/``d0, d1``: byte ranges in the target's/draft's text; ``exact``: the same bytes
    on both sides (mapped byte for byte), else template text mapped as a whole.
    """

    t0: np.ndarray
    t1: np.ndarray
    d0: np.ndarray
    d1: np.ndarray
    exact: np.ndarray


def anchor_chunks(t_text: bytes, d_text: bytes, anchors: Sequence[bytes],
                  required: Sequence[bool] | None = None) -> Chunks:
    """Cut both texts at ``anchors``: texts both contain, in this order (the message parts).

    The ``required`` anchors (the documents, which every rendering holds verbatim) are placed
    first, each after the previous one; the others (instructions and questions, which a template
    may move or strip) are then looked for only between the required ones around them, as given
    and then without surrounding whitespace. One found in neither text stays template text, so a
    short instruction can never pull a document out of place.
    """
    required = [False] * len(anchors) if required is None else list(required)
    rows: list[tuple[int, int, int, int, bool]] = []
    ti = di = 0
    between: list[bytes] = []
    for a, req in zip(anchors, required):
        tj, dj = (t_text.find(a, ti), d_text.find(a, di)) if req and a else (-1, -1)
        if tj < 0 or dj < 0:
            between.append(a)
            continue
        rows += _between(t_text, ti, tj, d_text, di, dj, between)
        rows.append((tj, tj + len(a), dj, dj + len(a), True))
        ti, di, between = tj + len(a), dj + len(a), []
    rows += _between(t_text, ti, len(t_text), d_text, di, len(d_text), between)
    if not rows:
        rows.append((0, 0, 0, 0, False))
    a = np.array(rows, dtype=np.int64).reshape(-1, 5)
    return Chunks(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4].astype(bool))


def _between(t: bytes, t0: int, t1: int, d: bytes, d0: int, d1: int, anchors: list[bytes]) -> list:
    """Chunks of ``t[t0:t1]`` and ``d[d0:d1]``, cut at the ``anchors`` found in both."""
    rows: list[tuple[int, int, int, int, bool]] = []
    ti, di = t0, d0
    for a in anchors:
        for cand in (a, a.strip()):
            tj, dj = (t.find(cand, ti, t1), d.find(cand, di, d1)) if cand else (-1, -1)
            if tj >= 0 and dj >= 0:
                break
        else:
            continue
        rows += _gap(t, ti, tj, d, di, dj)
        rows.append((tj, tj + len(cand), dj, dj + len(cand), True))
        ti, di = tj + len(cand), dj + len(cand)
    return rows + _gap(t, ti, t1, d, di, d1)


def _gap(t: bytes, t0: int, t1: int, d: bytes, d0: int, d1: int) -> list[tuple[int, int, int, int, bool]]:
    """Chunks for the template text between two anchors: its common prefix and suffix (whole
    characters) map exactly, the differing middle as a whole."""
    if t1 <= t0 and d1 <= d0:
        return []
    a, b = t[t0:t1], d[d0:d1]
    n = min(len(a), len(b))
    pre = next((i for i in range(n) if a[i] != b[i]), n)
    while pre and pre < n and (a[pre] & 0xC0) == 0x80:
        pre -= 1
    if pre == len(a) == len(b):
        return [(t0, t1, d0, d1, True)]
    m = n - pre
    suf = next((i for i in range(m) if a[len(a) - 1 - i] != b[len(b) - 1 - i]), m)
    while suf and (a[len(a) - suf] & 0xC0) == 0x80:
        suf -= 1
    rows = [(t0, t0 + pre, d0, d0 + pre, True)] if pre else []
    rows.append((t0 + pre, t1 - suf, d0 + pre, d1 - suf, False))
    if suf:
        rows.append((t1 - suf, t1, d1 - suf, d1, True))
    return rows


def _doubled(spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, e = 2 * spans[:, 0], 2 * spans[:, 1]
    return s, np.where(e > s, e, s + 1)


@dataclass(frozen=True)
class TextAlignment:
    """Target token ``j`` overlaps draft tokens ``lo[j]:hi[j]`` (``[n]`` each, ``lo < hi``)."""

    lo: np.ndarray
    hi: np.ndarray
    n_draft: int

    def carry(self, scores: np.ndarray) -> np.ndarray:
        """Draft scores ``[m]`` to target scores ``[n]``: the max over each overlap."""
        x = np.asarray(scores, dtype=np.float32)
        if x.shape != (self.n_draft,):
            raise ValueError(f"expected {self.n_draft} draft scores, got shape {x.shape}")
        return range_max(x, self.lo, self.hi)


def range_max(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``[max(x[lo[j]:hi[j]]) for j]`` (every range non-empty) with a sparse table, O(m log m)."""
    out = np.empty(len(lo), dtype=x.dtype)
    length = hi - lo
    if len(lo) and length.min() < 1:
        raise ValueError("empty range")
    level = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
    table = x
    for k in range(int(level.max()) + 1 if len(lo) else 0):
        sel = level == k
        if np.any(sel):
            w = 1 << k
            out[sel] = np.maximum(table[lo[sel]], table[hi[sel] - w])
        table = np.maximum(table[:-(1 << k)], table[1 << k:]) if len(table) > (1 << k) else table
    return out


def align(t_text: bytes, t_spans: np.ndarray, d_text: bytes, d_spans: np.ndarray, chunks: Chunks) -> TextAlignment:
    """The draft tokens overlapping each target token, through ``chunks``.

    A target token maps into the draft's text byte for byte inside an exact chunk and onto the whole
    corresponding chunk inside template text; the draft tokens overlapping the image are its
    overlap. A token whose image meets no draft token (template text with nothing opposite) takes
    the draft tokens on either side of it.
    """
    m = len(d_spans)
    if m == 0:
        raise ValueError("the draft has no tokens")
    ts, te = _doubled(t_spans)
    ds, de = _doubled(d_spans)
    c_t0, c_d0, c_d1 = 2 * chunks.t0, 2 * chunks.d0, 2 * chunks.d1
    last = len(c_t0) - 1
    cs = np.clip(np.searchsorted(c_t0, ts, "right") - 1, 0, last)
    ce = np.clip(np.searchsorted(c_t0, te - 1, "right") - 1, 0, last)
    a = np.where(chunks.exact[cs], c_d0[cs] + ts - c_t0[cs], c_d0[cs])
    b = np.where(chunks.exact[ce], c_d0[ce] + te - c_t0[ce], c_d1[ce])
    b = np.maximum(a, b)
    lo = np.searchsorted(de, a, "right")  # first draft token ending after a
    hi = np.searchsorted(ds, b, "left")  # draft tokens starting before b
    empty = hi <= lo  # take the draft tokens on either side
    lo = np.where(empty, np.clip(hi - 1, 0, m - 1), lo)
    hi = np.where(empty, np.clip(hi + 1, 1, m), hi)
    return TextAlignment(lo.astype(np.int64), hi.astype(np.int64), m)
