"""Norm balls: steepest-ascent directions, projections and random starts.

Every function works per example on NHWC batches: norms are taken over all
axes but the first.
"""

import jax
import jax.numpy as jnp

NORMS = ("linf", "l2")
_TINY = 1e-12


def _per_example(v: jax.Array, x: jax.Array) -> jax.Array:
  """Reshapes a per-example vector [B] to broadcast against x [B, ...]."""
  return v.reshape((-1,) + (1,) * (x.ndim - 1))


def l2_norm(x: jax.Array) -> jax.Array:
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=tuple(range(1, x.ndim))))


def l1_norm(x: jax.Array) -> jax.Array:
  return jnp.sum(jnp.abs(x), axis=tuple(range(1, x.ndim)))


def ascent_direction(grad: jax.Array, norm: str) -> jax.Array:
  """The unit-norm direction that raises a linear loss fastest: sign(g) or g/||g||2."""
  if norm == "linf":
    return jnp.sign(grad)
  return grad / _per_example(jnp.maximum(l2_norm(grad), _TINY), grad)


def project(delta: jax.Array, eps, norm: str) -> jax.Array:
  """The closest point of the eps-ball to delta (for L2: rescale if outside)."""
  if norm == "linf":
    return jnp.clip(delta, -eps, eps)
  scale = jnp.minimum(1.0, eps / jnp.maximum(l2_norm(delta), _TINY))
  return delta * _per_example(scale, delta)


def is_key_batch(key) -> bool:
  """True for one PRNG key per example: typed keys of shape [B] or raw uint32 [B, 2]."""
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key.ndim == 1
  return key.ndim == 2


def random_point(key: jax.Array, shape, eps, norm: str, dtype=jnp.float32) -> jax.Array:
  """A uniform sample of the eps-ball (L-inf: a cube; L2: direction x radius u^(1/d)).

  `key` is one key for the batch, or one key per example ([B] keys): then each
  example's sample depends on its own key alone, not on where it sits in the
  batch (the analysis derives the keys from the images' content).
  """
  if is_key_batch(key):
    one = (1,) + tuple(shape[1:])
    return jax.vmap(lambda k: random_point(k, one, eps, norm, dtype)[0])(key)
  if norm == "linf":
    return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * eps
  k_dir, k_rad = jax.random.split(key)
  direction = jax.random.normal(k_dir, shape, dtype)
  direction = direction / _per_example(jnp.maximum(l2_norm(direction), _TINY), direction)
  dim = 1
  for s in shape[1:]:
    dim *= s
  radius = jax.random.uniform(k_rad, (shape[0],), dtype) ** (1.0 / dim) * eps
  return direction * _per_example(radius, direction)


def to_ball_and_box(x_adv: jax.Array, x: jax.Array, eps, norm: str) -> jax.Array:
  """Projects x_adv into the eps-ball around x, then into the image box [0, 1].

  For L-inf the result is in both sets (the two are axis-aligned boxes). For L2
  the clip after the projection can only shrink the perturbation, so the result
  stays in the ball.
  """
  return jnp.clip(x + project(x_adv - x, eps, norm), 0.0, 1.0)
