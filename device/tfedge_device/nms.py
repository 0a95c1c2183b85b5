"""Class-aware non-maximum suppression in numpy, vectorised, with the result of the classic greedy loop.

Greedy NMS (torchvision.ops.nms, Ultralytics' non_max_suppression): visit boxes by descending score; keep a
box unless a box already kept, of the same class, overlaps it with IoU > iou_threshold. Here:

1. Classes are kept apart by shifting each class's boxes along x by class_id * (span + 1), so boxes of
   different classes never overlap (torchvision's batched_nms trick) and one pass handles every class.
2. IoU <= (overlap along x) / (either box's width), so a pair can pass only if, with boxes sorted by xmin, the
   later one starts before xmax_i - iou_threshold * width_i: the partners of box i are a contiguous run
   found with searchsorted. Their IoU is computed in vectorised steps of at most PAIR_CHUNK pairs.
   When boxes crowd (many near-identical boxes of one class: a large object), the pairs grow as n^2; then
   classic greedy steps run first (each drops a whole cluster) until few pairs are left — the same result.
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
GREEDY_BATCH = 16  # greedy steps between two counts of the pairs left (_greedy_prefix)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of two [N, 4] (xmin, ymin, xmax, ymax) arrays -> [N] float32."""
    return _iou(*np.asarray(a, np.float32).T, *np.asarray(b, np.float32).T)


def _intersection_union(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2) -> tuple[np.ndarray, np.ndarray]:
    width = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    height = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    np.maximum(width, 0, out=width)
    np.maximum(height, 0, out=height)
    inter = width * height
    return inter, (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter


def _iou(*corners) -> np.ndarray:
    inter, union = _intersection_union(*corners)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _overlaps(*corners, iou_threshold: float) -> np.ndarray:
    """IoU > iou_threshold, without the division (inter > t * union; an empty union has no intersection)."""
    inter, union = _intersection_union(*corners)
    return inter > iou_threshold * union


def _sweep(boxes: np.ndarray, iou_threshold: float):
    """Boxes sorted by xmin, as columns, with each one's count of x-partners (see the module docstring)."""
    order = np.argsort(boxes[:, 0])  # any order of equal xmin finds each pair once
    columns = [np.take(boxes[:, k], order) for k in range(4)]  # np.take: fancy indexing of 2-D rows is
    xmin, xmax = columns[0], columns[2]                         # ~20x slower
    # IoU <= overlap along x / width of either box, so a partner must start before xmax - t * width.
    ends = np.searchsorted(xmin, xmax - iou_threshold * (xmax - xmin), side="left")  # partners: k+1 .. ends-1
    counts = np.maximum(ends - np.arange(len(order)) - 1, 0)
    return order, columns, counts, np.cumsum(counts)


def _pairs(sweep, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index arrays of every pair with IoU > iou_threshold (each pair once)."""
    order, columns, counts, cumulative = sweep
    ymin, height = columns[1], columns[3] - columns[1]
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
            hit = _overlaps(*(np.take(c, first) for c in columns), *(np.take(c, second) for c in columns),
                            iou_threshold=iou_threshold)
            firsts.append(np.take(order, first[hit]))
            seconds.append(np.take(order, second[hit]))
        start = stop
    if not firsts:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    return np.concatenate(firsts), np.concatenate(seconds)


def _pair_budget(count: int) -> int:
    """x-partner pairs above which clusters are thinned by greedy steps first (random boxes give ~9 a box)."""
    return 16 * count + 4096


def _greedy_prefix(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float):
    """Classic greedy steps (best box, drop what it overlaps), in batches, until the boxes left have few
    x-partners: dense clusters of near-identical boxes (one large object) cost one step each instead of
    n^2 / 2 pairs. -> (kept so far, the indices left in greedy order, their sweep)."""
    left = np.argsort(-scores, kind="stable")  # greedy order: score, then lower index
    kept, columns = [], [np.ascontiguousarray(boxes[:, k]) for k in range(4)]
    while True:
        for _ in range(GREEDY_BATCH):
            if not len(left):
                break
            best, rest = left[0], left[1:]
            kept.append(best)
            left = rest[~_overlaps(*(c[best] for c in columns), *(np.take(c, rest) for c in columns),
                                   iou_threshold=iou_threshold)]
        sweep = _sweep(boxes[left], iou_threshold)
        if not len(left) or int(sweep[3][-1]) <= _pair_budget(len(left)):
            return np.array(kept, np.intp), left, sweep


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
    sweep = _sweep(boxes, iou_threshold)
    kept, left = np.empty(0, np.intp), None
    if int(sweep[3][-1]) > _pair_budget(len(boxes)):
        kept, left, sweep = _greedy_prefix(boxes, scores, iou_threshold)
    first, second = _pairs(sweep, iou_threshold)  # indices into boxes, or into boxes[left]
    if left is not None:
        first, second = np.take(left, first), np.take(left, second)
    # Edges point from the better box to the worse one: higher score, then lower index (no global sort needed).
    score_a, score_b = np.take(scores, first), np.take(scores, second)
    swap = (score_a < score_b) | ((score_a == score_b) & (first > second))
    source, target = np.where(swap, second, first), np.where(swap, first, second)
    keep = np.zeros(len(boxes), bool)
    keep[np.arange(len(boxes)) if left is None else left] = True
    candidates = keep.copy()
    while True:
        suppressed = np.zeros(len(boxes), bool)
        suppressed[target[keep[source]]] = True
        updated = candidates & ~suppressed
        if np.array_equal(updated, keep):
            break
        keep = updated
    return _best(np.concatenate([kept, np.flatnonzero(keep)]), scores, max_detections)


def _best(indices: np.ndarray, scores: np.ndarray, count: int) -> np.ndarray:
    """The `count` best of `indices` by descending score, ties by lower index (sorting only what is needed)."""
    values = np.take(scores, indices)
    if len(indices) > count:  # keep everything scoring at least the count-th best, ties at the cut included
        cut = np.partition(values, len(values) - count)[len(values) - count]
        indices, values = indices[values >= cut], values[values >= cut]
    return indices[np.lexsort((indices, -values))][:count]
