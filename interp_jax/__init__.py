"""interp_jax: measure, expose and repair the consistency of neurons.

Dong et al., "Towards Interpretable Deep Neural Networks by Leveraging
Adversarial Examples" (arXiv 1901.09035), in JAX/Flax.
"""

from interp_jax import platform as _platform

_platform.split_cpu_into_cores()  # before JAX starts: see platform.py

__version__ = "0.1.0"
