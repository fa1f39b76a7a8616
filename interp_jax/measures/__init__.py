"""What is measured on a network's neurons, as pure functions of activations and labels.

    consistency   consis(n) = p^T A p from a streaming top-k, its chance level and
                  companions (top-k overlap, feature cosine)
    similarity    the class-similarity matrices A: identity, a class tree, WordNet
    wordnet       WordNet 3.0 read from its own database files; Wu-Palmer similarity
    concept_iou   network dissection's three passes: each unit's range, its top-quantile
                  threshold from a histogram, the IoU of its map with each concept
    influence     a neuron's influence on a prediction (the prediction difference)
    detection     adversarial inputs detected from the neurons a prediction rests on
"""

from interp_jax.measures import consistency, similarity

__all__ = ["consistency", "similarity"]
