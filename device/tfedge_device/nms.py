"""Class-aware non-maximum suppression in numpy, vectorised, with the result of the classic greedy loop.

Greedy NMS (torchvision.ops.nms, Ultralytics' non_max_suppression): visit boxes by descending score; keep a
box unless a box already kept, of the same class, overlaps it with IoU > iou_threshold. Here:

1. Classes are kept apart by shifting each class's boxes along x by class_id * (span + 1), so boxes of
   different classes never overlap (torchvision's batched_nms trick) and one pass handles every class.
2. IoU <= (overlap along x) / (either box's width), so a pair can pass only if, with boxes sorted by xmin, the
   later one starts before xmax_i - iou_threshold * width_i: the partners of box i are a contiguous run
   found with searchsorted. Their IoU is computed in vectorised steps of at most PAIR_CHUNK pairs.
3. The overlapping pairs form edges from the higher-scoring box to the lower one. The greedy result is the
   fixed point of keep[j] = not any(keep[i] for edges i -> j), reached from keep = all by repeated
   vectorised updates: after t updates every box whose longest suppression chain is shorter than t is
   settled, and a repeated state is final. Real detections give chains of a few boxes.

IoU uses continuous coordinates (area = width * height, no +1), as torchvision does.
"""

from __future__ import annotations

import numpy as np

IOU_THRESHOLD = 0.45  # the NMS IoU issue 18 asks for (Ultralytics' predict default is 0.7)
MAX_DETECTIONS = 300  # Ultralytics' max_det
# Candidate pairs whose IoU is computed at once: 32 kB temporaries stay below glibc's mmap threshold (128 kB),
# so they are reused from the heap instead of being mapped and page-faulted afresh (3-5x faster here).
PAIR_CHUNK = 8192


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of two [N, 4] (xmin, ymin, xmax, ymax) arrays -> [N] float32."""
    return _iou(*np.asarray(a, np.float32).T, *np.asarray(b, np.float32).T)


def _iou(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2) -> np.ndarray:
    width = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    height = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _overlapping_pairs(boxes: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index arrays of every pair with IoU > iou_threshold (each pair once)."""
    order = np.argsort(boxes[:, 0])  # any order of equal xmin finds each pair once
    columns = [np.take(boxes[:, k], order) for k in range(4)]  # sorted by xmin; np.take: fancy indexing
    xmin, xmax = columns[0], columns[2]                         # of 2-D rows is ~20x slower
    ymin, height = columns[1], columns[3] - columns[1]
    # IoU <= overlap along x / width of either box, so a partner must start before xmax - t * width.
    ends = np.searchsorted(xmin, xmax - iou_threshold * (xmax - xmin), side="left")  # partners: k+1 .. ends-1
    counts = np.maximum(ends - np.arange(len(order)) - 1, 0)
    cumulative = np.cumsum(counts)
    firsts, seconds = [], []
    start = 0
    while start < len(order):  # chunks of whole rows of at most PAIR_CHUNK pairs (at least one row)
        done = int(cumulative[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cumulative, done + PAIR_CHUNK, side="right")), start + 1)
        n = counts[start:stop]
        total = int(cumulative[stop - 1]) - done
        if total:
            first = np.repeat(np.arange(start, stop), n)
            second = first + 1 + np.arange(total) - np.repeat(cumulative[start:stop] - n - done, n)
            # Likewise along y, IoU <= overlap / either height: most x-partners fail this cheaper test.
            top_a, top_b = np.take(ymin, first), np.take(ymin, second)
            high_a, high_b = np.take(height, first), np.take(height, second)
            overlap = np.minimum(top_a + high_a, top_b + high_b)
            overlap -= np.maximum(top_a, top_b)
            near = overlap > iou_threshold * np.maximum(high_a, high_b)
            first, second = first[near], second[near]
            hit = _iou(*(np.take(c, first) for c in columns), *(np.take(c, second) for c in columns)) > iou_threshold
            firsts.append(np.take(order, first[hit]))
            seconds.append(np.take(order, second[hit]))
        start = stop
    if not firsts:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    return np.concatenate(firsts), np.concatenate(seconds)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None = None,
    iou_threshold: float = IOU_THRESHOLD,
    max_detections: int = MAX_DETECTIONS,
) -> np.ndarray:
    """Greedy class-aware NMS.

    Args:
      boxes: [N, 4] float (xmin, ymin, xmax, ymax), any units.
      scores: [N] float.
      classes: [N] int class ids (None: one class).
      iou_threshold: a box is dropped when it overlaps a kept, higher-scoring box of its class by more.
      max_detections: at most this many indices are returned.

    Returns:
      [K] int indices into boxes of the kept boxes, by descending score (ties: lower index first).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if len(boxes) == 0:
        return np.empty(0, np.intp)
    if classes is not None and len(boxes) > 1:
        classes = np.asarray(classes).reshape(-1)
        span = float(boxes.max() - min(float(boxes.min()), 0.0)) + 1.0
        boxes = boxes + (classes.astype(np.float32) * span)[:, None] * np.array([1, 0, 1, 0], np.float32)
    first, second = _overlapping_pairs(boxes, iou_threshold)
    # Edges point from the better box to the worse one: higher score, then lower index (no global sort needed).
    score_a, score_b = np.take(scores, first), np.take(scores, second)
    swap = (score_a < score_b) | ((score_a == score_b) & (first > second))
    source, target = np.where(swap, second, first), np.where(swap, first, second)
    keep = np.ones(len(boxes), bool)
    while True:
        suppressed = np.zeros(len(boxes), bool)
        suppressed[target[keep[source]]] = True
        updated = ~suppressed
        if np.array_equal(updated, keep):
            break
        keep = updated
    return _best(np.flatnonzero(keep), scores, max_detections)


def _best(indices: np.ndarray, scores: np.ndarray, count: int) -> np.ndarray:
    """The `count` best of `indices` by descending score, ties by lower index (sorting only what is needed)."""
    values = np.take(scores, indices)
    if len(indices) > count:  # keep everything scoring at least the count-th best, ties at the cut included
        cut = np.partition(values, len(values) - count)[len(values) - count]
        indices, values = indices[values >= cut], values[values >= cut]
    return indices[np.lexsort((indices, -values))][:count]
