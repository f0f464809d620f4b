"""Latent-space analysis of a trained VAE: plain functions returning arrays, figures or small frozen
dataclasses; the caller writes them (`vaekit.figures.plots.write_output(fig, "z.png")`).

    emb = encode_dataset(model, x, y)                     # posterior means / variances (+ samples), KL per dim
    proj = project(emb.mean, dims=2, method="tsne")       # 2-D / 3-D coordinates (PCA, t-SNE, UMAP)
    fig = scatter_figure(proj.coords, emb.labels)         # or scatter_html(...): the page as text
    trav = traverse(model, embedding=emb)                 # one row per dimension, most informative first
    path = interpolate(model, x[0], x[1], method="slerp")
    results = compare_clusterings(emb.mean, x.numpy(), emb.labels, k=10)
    v = label_vector(emb.mean, emb.labels, target=1, source=7); apply_vector(model, x[:8], v.vector, [0, 1, 2])
"""

from .arithmetic import (
                         AttributeVector,
                         Shifted,
                         analogy,
                         apply_vector,
                         as_boolean,
                         attribute_vector,
                         dataset_attribute,
                         label_vector,
                         read_attribute_file,
)
from .clustering import (
                         ClusteringResult,
                         ClusterScores,
                         cluster,
                         cluster_and_score,
                         clustering_accuracy,
                         compare_clusterings,
                         match_clusters,
                         matched_confusion,
                         score_clustering,
)
from .figures import confusion_figure, decoded_figure, decoded_output, palette, scatter_figure
from .html import scatter_html
from .interpolation import Interpolation, LatentGrid, interpolate, interpolate_codes, latent_grid, lerp, slerp
from .latents import (
                         ACTIVE_UNIT_THRESHOLD,
                         COLLAPSED_KL,
                         Embedding,
                         embedding_arrays,
                         encode_dataset,
                         load_embedding,
                         read_example,
                         subsample_indices,
)
from .projection import Projection, project
from .traversal import Traversal, prior_moments, traverse

__all__ = [
    "Embedding", "encode_dataset", "embedding_arrays", "load_embedding", "subsample_indices", "read_example",
    "ACTIVE_UNIT_THRESHOLD",
    "COLLAPSED_KL",
    "Projection", "project", "scatter_figure", "scatter_html", "palette",
    "Traversal", "traverse", "prior_moments",
    "Interpolation", "interpolate", "interpolate_codes", "lerp", "slerp", "LatentGrid", "latent_grid",
    "ClusterScores", "ClusteringResult", "cluster", "cluster_and_score", "score_clustering",
    "clustering_accuracy", "match_clusters", "matched_confusion", "compare_clusterings", "confusion_figure",
    "AttributeVector", "Shifted", "attribute_vector", "label_vector", "apply_vector", "analogy",
    "as_boolean", "read_attribute_file", "dataset_attribute", "decoded_figure",
    "decoded_output",
]
