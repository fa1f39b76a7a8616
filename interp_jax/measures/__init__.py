"""What is measured on a network's neurons, as pure functions of activations and labels.

consistency: consis(n) = p^T A p from a streaming top-k, its chance level and
companions (overlap, feature cosine); similarity: the class-similarity
matrices A (identity, a class tree, WordNet).
"""

from interp_jax.measures import consistency, similarity

__all__ = ["consistency", "similarity"]
