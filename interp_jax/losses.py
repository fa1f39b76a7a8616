"""Losses: cross-entropy, accuracy, and the consistent loss's distances.

    d = feature_distance(phi_clean, phi_adv, "l2")    # a scalar, averaged over the batch

Distances (METHOD.md section 3), each averaged over the batch:
  l2             squared difference, averaged over elements (the default)
  cosine         1 - cosine similarity of the flattened features
  kl_logits      KL(softmax(clean) || softmax(adv)), TRADES-like; logits only
  logit_pairing  squared L2 norm of the logit difference (adversarial logit pairing); logits only
"""

import jax
import jax.numpy as jnp
import optax

DISTANCES = ("l2", "cosine", "kl_logits", "logit_pairing")
LOGIT_ONLY = ("kl_logits", "logit_pairing")


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy with integer labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


def feature_distance(clean: jax.Array, adv: jax.Array, distance: str) -> jax.Array:
  """d(phi(x), phi(x')) averaged over the batch; see the module docstring.

  References: Dong et al. 2019 (consistent loss); Zhang et al. 2019 (TRADES);
  Kannan et al. 2018 (adversarial logit pairing).
  """
  clean = clean.astype(jnp.float32).reshape(clean.shape[0], -1)
  adv = adv.astype(jnp.float32).reshape(adv.shape[0], -1)
  if distance == "l2":
    return jnp.mean(jnp.square(clean - adv))
  if distance == "cosine":
    num = jnp.sum(clean * adv, axis=1)
    den = jnp.linalg.norm(clean, axis=1) * jnp.linalg.norm(adv, axis=1)
    return jnp.mean(1.0 - num / jnp.maximum(den, 1e-12))
  if distance == "kl_logits":
    log_p, log_q = jax.nn.log_softmax(clean), jax.nn.log_softmax(adv)
    return jnp.mean(jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=1))
  if distance == "logit_pairing":
    return jnp.mean(jnp.sum(jnp.square(clean - adv), axis=1))
  raise ValueError(f"unknown distance {distance!r}; use one of {DISTANCES}")
