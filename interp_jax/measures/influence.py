"""Influence of a neuron on a prediction: the prediction difference (METHOD.md section 4).

    pd = prediction_difference(model, variables, x, "fc1")           # [B, N], predicted class
    pd = prediction_difference(model, variables, x, "conv3", classes=y, fill=mean_map)

PD(n, x, c) = P(c | x) - P(c | x with neuron n ablated). Ablation replaces
the neuron's channel by `fill` (zero by default; a mean over a reference set,
`reference_mean`, is the other common choice) through the `ablations` entry
that every house model's `record` reads (models/common.py). All neurons are
knocked out under one `vmap`: the layers below the ablated one do not depend
on the neuron, so `vmap` leaves them unbatched and they run once per image,
not once per neuron; `neuron_chunk` bounds the memory of the layers above.
"""

import jax
import jax.numpy as jnp

from interp_jax.models.common import ABLATIONS, apply_with_features


def check_model(model, layer) -> None:
  """Raises ValueError unless `model` can ablate the neurons of `layer`."""
  names = getattr(model, "layer_names", ())
  if layer not in names:
    raise ValueError(f"the model has no layer {layer!r}; its layers are {', '.join(names)}")
  if not hasattr(model, "has_variable"):  # an OwnModel: a user's module does not read ablations
    raise ValueError("tracing needs a model of the zoo (models.create or an import); a module "
                     "adapted with models.adapt cannot ablate its neurons")


def reference_mean(model, variables, images: jax.Array, layer: str) -> jax.Array:
  """The layer's mean activation map over reference images: [H, W, C] (or [C])."""
  return apply_with_features(model, variables, images, (layer,))[1][layer].mean(0)


def prediction_difference(model, variables, x: jax.Array, layer: str, classes=None, fill=None,
                          neuron_chunk: int | None = None) -> jax.Array:
  """PD of every neuron of `layer` for every image: [B, N]. Jit it in a closure over
  model and layer (they are not arrays).

  Args:
    x: [B, H, W, C] images in [0, 1].
    classes: [B] the class c per image; default the model's prediction.
    fill: what an ablated neuron is set to, broadcastable to the layer's
      activation (a [C] vector or an [H, W, C] map); default 0.
    neuron_chunk: neurons ablated at once (None: all of them in one vmap).
  """
  check_model(model, layer)
  base = {k: v for k, v in variables.items() if k not in (ABLATIONS, "intermediates")}
  logits, feats = apply_with_features(model, base, x, (layer,))
  probs = jax.nn.softmax(logits.astype(jnp.float32), -1)
  classes = jnp.argmax(logits, -1) if classes is None else jnp.asarray(classes)
  rows = jnp.arange(x.shape[0])
  units = feats[layer].shape[-1]
  fill = jnp.zeros((units,), jnp.float32) if fill is None else jnp.asarray(fill, jnp.float32)

  def ablated(n):
    keep = 1.0 - jax.nn.one_hot(n, units, dtype=jnp.float32)
    edited = {**base, ABLATIONS: {layer: {"keep": keep, "fill": fill}}}
    p = jax.nn.softmax(model.apply(edited, x).astype(jnp.float32), -1)
    return p[rows, classes]

  neurons = jnp.arange(units)
  if neuron_chunk is None or neuron_chunk >= units:
    ablated_probs = jax.vmap(ablated)(neurons)                       # [N, B]
  else:
    ablated_probs = jax.lax.map(ablated, neurons, batch_size=neuron_chunk)
  return probs[rows, classes][:, None] - ablated_probs.T


def top_neurons(pd: jax.Array, count: int):
  """The `count` neurons of highest PD per image: (ids [B, count], values [B, count])."""
  values, ids = jax.lax.top_k(pd, count)
  return ids, values
