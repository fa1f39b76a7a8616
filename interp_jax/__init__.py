"""interp_jax: measure, expose and repair the consistency of neurons.

Dong et al., "Towards Interpretable Deep Neural Networks by Leveraging
Adversarial Examples" (arXiv 1901.09035), in JAX/Flax.
"""

__version__ = "0.1.0"
