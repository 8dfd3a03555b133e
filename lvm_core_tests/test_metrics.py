"""lvm_core.metrics: the Hungarian solver against scipy.optimize.linear_sum_assignment
(an oracle at test time only), clustering accuracy against brute force over
every one-to-one matching, and the confusion matrix.

References: Kuhn 1955; Jonker & Volgenant 1987; Xie, Girshick & Farhadi 2016.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core.metrics import (best_matching, clustering_accuracy, confusion_matrix,
                              linear_sum_assignment)

from .conftest import require

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@pytest.mark.reference
@settings(max_examples=60)
@given(n=st.integers(0, 9), m=st.integers(0, 9), kind=st.sampled_from(["float", "ties", "big"]),
       seed=seeds)
def test_assignment_matches_scipy(n, m, kind, seed):
    optimize = require("scipy.optimize")
    rng = np.random.default_rng(seed)
    if kind == "float":
        C = rng.standard_normal((n, m))
    elif kind == "ties":
        C = rng.integers(-2, 3, (n, m)).astype(float)
    else:
        C = rng.integers(0, 1000, (n, m)) * 1e6
    rows, cols = linear_sum_assignment(C)
    r_ref, c_ref = optimize.linear_sum_assignment(C)
    assert len(rows) == len(r_ref) == min(n, m)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert np.all(np.diff(rows) > 0)
    assert C[rows, cols].sum() == pytest.approx(C[r_ref, c_ref].sum(), rel=1e-12, abs=1e-9)


def test_assignment_small_example_by_hand():
    C = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    rows, cols = linear_sum_assignment(C)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]  # 1 + 2 + 2 = 5


@settings(max_examples=40)
@given(n_classes=st.integers(1, 5), n_clusters=st.integers(1, 5), N=st.integers(1, 60),
       seed=seeds)
def test_clustering_accuracy_equals_brute_force(n_classes, n_clusters, N, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, N)
    c = rng.integers(0, n_clusters, N)
    C, Kc = int(y.max()) + 1, int(c.max()) + 1
    best = 0
    for perm in itertools.permutations(range(max(C, Kc)), Kc):  # cluster k -> class perm[k]
        best = max(best, int(np.sum(np.asarray(perm)[c] == y)))
    assert clustering_accuracy(y, c) == pytest.approx(best / N)


def test_accuracy_is_invariant_to_relabelling_and_counts_unmatched_clusters():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 500)
    assert clustering_accuracy(y, (y * 7 + 3) % 10) == 1.0
    # 20 clusters, each class split in two: only one half of each class can be matched
    c = y + 10 * (np.arange(500) % 2)
    counts = confusion_matrix(y, c)
    expected = sum(max(counts[k, k], counts[k, k + 10]) for k in range(10)) / 500
    assert clustering_accuracy(y, c) == pytest.approx(expected)
    matching = best_matching(y, c)
    assert len(matching) == 10 and sorted(matching.values()) == list(range(10))


def test_confusion_matrix_counts():
    y = np.array([0, 0, 1, 2, 2, 2])
    c = np.array([1, 1, 0, 0, 2, 2])
    np.testing.assert_array_equal(confusion_matrix(y, c),
                                  [[0, 2, 0], [1, 0, 0], [1, 0, 2]])
    assert confusion_matrix(y, c, n_classes=4, n_clusters=5).shape == (4, 5)


def test_labels_on_the_simulated_device(backend):
    y = backend.asarray(np.array([0, 1, 1, 2]), dtype="int64")
    c = backend.asarray(np.array([2, 0, 0, 1]), dtype="int64")
    assert clustering_accuracy(y, c) == 1.0


def test_errors_are_named():
    with pytest.raises(ValueError, match="cost"):
        linear_sum_assignment(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="same length"):
        clustering_accuracy([0, 1], [0])
    with pytest.raises(TypeError, match="integer"):
        clustering_accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match=">= 0"):
        clustering_accuracy([-1, 1], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        clustering_accuracy(np.zeros(0, int), np.zeros(0, int))
