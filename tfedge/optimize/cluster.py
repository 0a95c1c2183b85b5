"""Weight clustering (tfmot `cluster_weights`): each layer's weights share N centroid values.

Centroids start k-means++ style (tfmot's KMEANS_PLUS_PLUS) and are fine-tuned; `strip_clustering` leaves
plain layers whose kernels hold at most N distinct values, which compress well (gzip) and quantize cleanly.
"""

from __future__ import annotations

from .common import CLUSTERING_NOTE, OptimizeRequest, Technique, optimize


def wrap(model, request: OptimizeRequest, data, steps_per_epoch: int):
    import tensorflow_model_optimization as tfmot  # lazily: sets TF_USE_LEGACY_KERAS=1

    clustering = tfmot.clustering.keras
    clustered = clustering.cluster_weights(
        model, number_of_clusters=request.options["clusters"],
        cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS)
    return clustered, [], 0


def strip(model):
    import tensorflow_model_optimization as tfmot

    return tfmot.clustering.keras.strip_clustering(model)


def inspect(model) -> dict:
    from .measure import unique_weights

    return {"unique_weights": unique_weights(model)}


TECHNIQUE = Technique("cluster", wrap, strip, inspect, note=CLUSTERING_NOTE)


def cluster(request: OptimizeRequest) -> dict:
    from ..errors import BadInput

    clusters = request.options.get("clusters")
    if clusters is None or not 2 <= clusters <= 256:
        raise BadInput(f"--clusters must be between 2 and 256, got {clusters}")
    return optimize(request, TECHNIQUE)
