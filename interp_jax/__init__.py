"""interp_jax: measure, expose and repair the consistency of neurons.

Dong et al., "Towards Interpretable Deep Neural Networks by Leveraging
Adversarial Examples" (arXiv 1901.09035), in JAX/Flax.

Importing the package changes no setting and no environment variable; the
command lines split a CPU host into one device per core explicitly
(see cpu_devices.py).
"""

__version__ = "0.1.0"
