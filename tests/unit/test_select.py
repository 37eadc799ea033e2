"""Pure numpy scoring and selection (no llama.cpp)."""

import numpy as np
import pytest

from specllama.select.scores import ScoreAccumulator, linear_query_weights, pool1d
from specllama.select.topk import neighbour_offsets, select_tokens


def test_linear_query_weights_go_from_zero_to_one():
    w = linear_query_weights(5)
    assert w.tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert linear_query_weights(1).tolist() == [1.0]


def test_accumulator_max_reduces_heads_rows_and_blocks_per_gqa_group():
    acc = ScoreAccumulator(n_keys=3, n_head=4, n_head_kv=2, reduction="max")
    block = np.zeros((4, 2, 5), dtype=np.float32)  # [head, row, kv]; kv 3..4 are padding
    block[0, 0, 0] = 0.9  # head 0 -> kv head 0
    block[1, 1, 1] = 0.5  # head 1 -> kv head 0
    block[3, 0, 2] = 0.7  # head 3 -> kv head 1
    block[2, 1, 4] = 1.0  # padding column: ignored
    assert acc.add(block)
    np.testing.assert_allclose(acc.per_head(), [[0.9, 0.5, 0], [0, 0, 0.7]])
    second = np.zeros((4, 1, 3), dtype=np.float32)
    second[2, 0, 0] = 0.95
    acc.add(second)
    np.testing.assert_allclose(acc.scores(), [0.95, 0.5, 0.7])


def test_accumulator_mean_is_a_sum_and_weights_scale_rows():
    acc = ScoreAccumulator(n_keys=2, n_head=2, n_head_kv=1, reduction="mean")
    block = np.ones((2, 2, 2), dtype=np.float32)
    acc.add(block, weights=np.array([0.0, 1.0]))
    np.testing.assert_allclose(acc.scores(), [2.0, 2.0])  # 2 heads x (0*1 + 1*1)


def test_accumulator_skips_blocks_that_do_not_cover_every_key():
    acc = ScoreAccumulator(n_keys=10, n_head=2, n_head_kv=2)
    assert not acc.add(np.ones((2, 1, 8), dtype=np.float32))
    assert acc.skipped == 1 and acc.blocks == 0
    assert acc.scores().max() == 0


def test_pool1d_matches_centred_reference_padding():
    x = np.array([0, 0, 5, 0, 0, 0, 1], dtype=np.float32)
    np.testing.assert_array_equal(pool1d(x, 3, "max"), [0, 5, 5, 5, 0, 1, 1])
    # even kernel: (k-1)//2 = 1 to the left, 2 to the right
    np.testing.assert_array_equal(pool1d(x, 4, "max"), [5, 5, 5, 5, 1, 1, 1])
    np.testing.assert_allclose(pool1d(x, 3, "avg"), [0, 5 / 3, 5 / 3, 5 / 3, 0, 1 / 3, 1 / 3])
    assert pool1d(x, 1).tolist() == x.tolist()


def test_neighbour_offsets_nearest_first():
    assert neighbour_offsets(1).tolist() == [0]
    assert neighbour_offsets(3).tolist() == [0, -1, 1]
    assert neighbour_offsets(4).tolist() == [0, -1, 1, 2]


def test_select_keeps_window_protected_and_top_scores_within_budget():
    scores = np.zeros(20, dtype=np.float32)
    scores[3] = 5
    scores[10] = 4
    protected = np.zeros(20, dtype=bool)
    protected[0] = True
    keep = select_tokens(scores, budget=6, window=3, neighbours=1, protected=protected)
    assert keep.tolist() == [0, 3, 10, 17, 18, 19]


def test_select_expands_neighbours_in_rank_order_and_cuts_to_budget():
    scores = np.zeros(30, dtype=np.float32)
    scores[5] = 9
    scores[20] = 8
    keep = select_tokens(scores, budget=7, window=1, neighbours=3)
    # window {29}, then token 5 with 4 and 6, then token 20 with 19 and 21 -> 7 tokens
    assert keep.tolist() == [4, 5, 6, 19, 20, 21, 29]
    keep = select_tokens(scores, budget=5, window=1, neighbours=3)
    assert keep.tolist() == [4, 5, 6, 20, 29]


def test_select_never_returns_non_candidates_and_refuses_impossible_budget():
    scores = np.arange(10, dtype=np.float32)
    cand = np.zeros(10, dtype=bool)
    cand[:4] = True
    keep = select_tokens(scores, budget=4, window=2, candidates=cand)
    assert set(keep.tolist()) == {2, 3, 8, 9}
    with pytest.raises(ValueError):
        select_tokens(scores, budget=2, window=3)
    assert select_tokens(scores, budget=10).tolist() == list(range(10))
