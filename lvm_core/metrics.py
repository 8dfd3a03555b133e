"""Clustering metrics: the confusion matrix, the best one-to-one matching of
clusters to classes (the linear assignment problem) and clustering accuracy.

References: Kuhn 1955, "The Hungarian method for the assignment problem";
Munkres 1957; Jonker & Volgenant 1987 (shortest augmenting paths with dual
potentials, O(n^2 m)); clustering accuracy with the best matching as in Xie,
Girshick & Farhadi 2016 (DEC), eq. 10.

Assignment problem: for a cost matrix C (n, m) with n <= m, find an injective
map sigma from rows to columns minimising sum_i C[i, sigma(i)].  The solver
keeps dual potentials u (rows), v (columns) with C[i, j] - u_i - v_j >= 0 and
adds one row at a time along a shortest augmenting path in the reduced costs
(Dijkstra without a heap: O(m) per scan, O(n m) per row).  For n > m the
transposed problem is solved.

Clustering accuracy::

    acc = max_sigma 1/N sum_n 1[y_n = sigma(c_n)]

over one-to-one maps sigma of clusters to classes (clusters left unmatched
when there are more clusters than classes count as errors), i.e. the
assignment problem on C = -confusion.  Host (NumPy) code: labels are moved to
the host once (they are small integer vectors).
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy

__all__ = ["linear_sum_assignment", "confusion_matrix", "best_matching",
           "clustering_accuracy"]


def _as_labels(y, name):
    arr = np.asarray(to_numpy(y))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer labels; got shape {arr.shape}. "
                         "Pass one label per example.")
    if arr.size and arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer labels; got dtype {arr.dtype}. "
                            "Cast with .astype(int).")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold labels >= 0; got the minimum {arr.min()}. "
                         "Re-code the labels as 0..C-1.")
    return arr


def linear_sum_assignment(cost):
    """Rows and columns (row_ind, col_ind) of a minimum-cost one-to-one assignment.

    cost (n, m), finite.  min(n, m) pairs are returned, row_ind increasing,
    minimising sum cost[row_ind, col_ind] (the problem of
    ``scipy.optimize.linear_sum_assignment``; same optimum, ties may be broken
    differently).  Shortest augmenting paths with potentials (Jonker & Volgenant
    1987): each row i is inserted with reduced costs C[i, j] - u_i - v_j >= 0.
    """
    C = np.asarray(to_numpy(cost), dtype=np.float64)
    if C.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix (n, m); got shape {C.shape}.")
    if not np.all(np.isfinite(C)):
        raise ValueError("cost must be finite (no NaN or inf); replace forbidden pairs by a "
                         "large finite cost.")
    transposed = C.shape[0] > C.shape[1]
    if transposed:
        C = C.T
    n, m = C.shape
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # 1-based arrays with a virtual column 0 (the row being inserted sits there)
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    row_of = np.zeros(m + 1, dtype=np.int64)  # row_of[j]: row matched to column j (0: none)
    way = np.zeros(m + 1, dtype=np.int64)     # previous column on the shortest path
    for i in range(1, n + 1):
        row_of[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = row_of[j0]
            # reduced costs of row i0 to every free column; relax the tentative distances
            cur = C[i0 - 1, :] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            # shift the potentials: visited columns keep zero reduced cost on the tree
            u[row_of[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while j0:  # augment along the path
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    cols = np.nonzero(row_of[1:])[0]
    rows = row_of[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def confusion_matrix(labels_true, labels_pred, n_classes=None, n_clusters=None):
    """counts[c, k] = #{n : y_n = c, cluster_n = k}, shape (C, K).

    C and K default to 1 + the largest label on each side.
    """
    y = _as_labels(labels_true, "labels_true")
    c = _as_labels(labels_pred, "labels_pred")
    if y.shape != c.shape:
        raise ValueError(f"labels_true and labels_pred must have the same length; got "
                         f"{y.shape[0]} and {c.shape[0]}.")
    C = int(y.max()) + 1 if n_classes is None and y.size else int(n_classes or 0)
    K = int(c.max()) + 1 if n_clusters is None and c.size else int(n_clusters or 0)
    if y.size and (y.max() >= C or c.max() >= K):
        raise ValueError(f"labels exceed n_classes={C} / n_clusters={K}; got maxima "
                         f"{y.max()} and {c.max()}.")
    counts = np.zeros((C, K), dtype=np.int64)
    np.add.at(counts, (y, c), 1)
    return counts


def best_matching(labels_true, labels_pred):
    """The one-to-one map cluster -> class maximising the matched counts.

    Returns a dict {cluster: class} (clusters left unmatched are absent).
    """
    counts = confusion_matrix(labels_true, labels_pred)
    classes, clusters = linear_sum_assignment(-counts)
    return {int(k): int(c) for c, k in zip(classes, clusters)}


def clustering_accuracy(labels_true, labels_pred):
    """max over one-to-one maps sigma of 1/N sum_n 1[y_n = sigma(cluster_n)]."""
    counts = confusion_matrix(labels_true, labels_pred)
    N = int(counts.sum())
    if N == 0:
        raise ValueError("labels_true is empty; clustering accuracy needs at least one example.")
    classes, clusters = linear_sum_assignment(-counts)
    return float(counts[classes, clusters].sum()) / N
