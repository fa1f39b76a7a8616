"""Extract: one streaming pass over a split that keeps, per layer and set, each
neuron's k + 1 best images, and per image its label and predictions.

    ex = extract(model, variables, source, layers, spec, k=50, key=jax.random.key(0),
                 shared=(source_model.apply, source_variables))

One jitted function per batch attacks the batch, runs the model on real and
adversarial images and merges every layer's activations into the running
top-k of each set (a consistency.TopKStream: on CPU, batches are merged up to
2,048 rows at a time; memory O(neurons x (k + 2,048)), any split size):

- real, adversarial (the model's own white-box attack), mixed (their union:
  adversarial image i has id N + i);
- successful: the adversarial images that changed the model's prediction;
- shared: adversarial images made against another model (`shared`), the
  same inputs for every model compared; or given (`shared_images`), when
  they were kept from that model's own analysis.

Each image's random start comes from a key derived from its pixels, so an
image's adversarial version does not depend on where the split stores it.
"""

import dataclasses

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from interp_jax import data, models, sharding
from interp_jax.measures import consistency
from interp_jax.errors import UserError

_KEEP_IMAGES_BYTES = 256 << 20  # smaller splits keep their adversarial images (float32)


@dataclasses.dataclass
class Extracted:
  """What the scores are computed from; everything indexed by image id (storage position)."""
  tallies: dict            # layer -> set -> consistency.TopK of k + 1 slots (numpy)
  labels: np.ndarray       # [N] true classes
  predicted: dict          # "real", "adversarial" (and "shared") -> [N] predicted classes
  cosine: dict             # layer -> [N] cos(phi(x), phi(x_adv))
  adversarial: np.ndarray | None  # [N, H, W, C] float32 when small enough to keep, else None

  @property
  def successful(self) -> np.ndarray:
    """[N] bool: the attack changed the model's prediction."""
    return self.predicted["adversarial"] != self.predicted["real"]


content_seeds = data.content_hashes  # an image's random start is seeded by its pixels


def batch_step(model, layers, spec, activation, n, mesh, with_shared=None,
               shared_apply=None):
  """The jitted per-batch function: attacks, forward passes and top-k merges.

  `scale` multiplies eps (and an explicit step size) as a traced value, so the
  eps curve passes one step to every `extract` call and compiles once. The
  tallies and the per-image rows leave replicated, so every process of a
  multi-host run reads the whole batch's results; the adversarial images stay
  sharded and are gathered only when kept. with_shared: None, "attack" (made
  against shared_apply) or "images" (given in batch["shared"]).
  """
  update = consistency.stream_update

  def step(tallies, variables, shared_variables, batch, key, scale):
    x, y, ids, valid = batch["image"], batch["label"], batch["index"], batch["mask"]
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(batch["seed"])
    budget = {"eps": spec.eps * scale}
    if spec.step_size is not None and spec.name != "fgsm":
      budget["step_size"] = spec.step_size * scale
    x_adv = spec(model.apply, variables, x, y, keys, **budget)
    sets = {"real": x, "adversarial": x_adv}
    if with_shared == "attack":
      sets["shared"] = spec(shared_apply, shared_variables, x, y, keys, **budget)
    elif with_shared == "images":
      sets["shared"] = batch["shared"]
    outs = {s: models.apply_with_features(model, variables, v, layers) for s, v in sets.items()}
    pred = {s: jnp.argmax(logits, -1) for s, (logits, _) in outs.items()}
    success = valid & (pred["adversarial"] != pred["real"])
    new, cos = {}, {}
    for l in layers:
      act = {s: consistency.neuron_activations(f[l], activation) for s, (_, f) in outs.items()}
      t = tallies[l]
      new[l] = {"real": update(t["real"], act["real"], ids, valid),
                "adversarial": update(t["adversarial"], act["adversarial"], ids, valid),
                "mixed": update(update(t["mixed"], act["real"], ids, valid),
                                act["adversarial"], ids + n, valid),
                "successful": update(t["successful"], act["adversarial"], ids, success)}
      if with_shared:
        new[l]["shared"] = update(t["shared"], act["shared"], ids, valid)
      cos[l] = consistency.cosine_similarity(outs["real"][1][l], outs["adversarial"][1][l])
    rows = {"pred": pred, "cos": cos, "label": y, "index": ids, "mask": valid}
    return new, rows, x_adv

  everywhere = sharding.replicated(mesh)
  return jax.jit(step, out_shardings=(everywhere, everywhere, sharding.batch_sharded(mesh)))


def extract(model, variables, source, layers, spec, *, k: int, key, activation="max",
            batch_size=256, shared=None, shared_images=None, eps_scale=1.0, keep_images=True,
            step=None, progress=True) -> Extracted:
  """Streams `source` once; see the module docstring.

  Args:
    model, variables: the Flax model analysed.
    source: a data source (`len`, `get`) of the split analysed.
    layers: names of the model's layers to tally.
    spec: the attacks.AttackSpec of the model's own attack (and of the shared one).
    k: top images scored per neuron (k + 1 are kept, to tell ties apart).
    key: the PRNG key the per-image keys are folded from.
    shared: (apply_fn, variables) of the model the shared set is made against.
    shared_images: [N, H, W, C] float32, that set already made (instead of `shared`).
    eps_scale: attack with eps (and an explicit step size) times this.
    step: a batch_step of the same arguments, to reuse its compilation.
    keep_images: keep the adversarial images (float32) when the split is small.
  """
  n = len(source)
  image_shape = source.get(np.array([0]))["image"].shape[1:]
  shape = jax.eval_shape(lambda x: models.apply_with_features(model, variables, x, layers)[1],
                         jnp.zeros((1, *image_shape), jnp.float32))
  with_shared = "images" if shared_images is not None else "attack" if shared else None
  tallies = {l: {s: consistency.topk_stream(shape[l].shape[-1], k + 1, batch_size)
                 for s in ("real", "adversarial", "mixed", "successful")
                 + (("shared",) if with_shared else ())} for l in layers}
  shared_apply, shared_variables = shared if shared is not None else (None, None)
  mesh = sharding.data_mesh()  # the batch is split over the devices (CPU cores too)
  if batch_size % mesh.size:
    raise UserError(f"batch_size {batch_size} is not divisible by the {mesh.size} devices")
  step = step or batch_step(model, tuple(layers), spec, activation, n, mesh, with_shared,
                            shared_apply)
  labels = np.zeros(n, np.int32)
  predicted = {s: np.zeros(n, np.int32) for s in ("real", "adversarial")
               + (("shared",) if with_shared else ())}
  cosine = {l: np.zeros(n, np.float32) for l in layers}
  small = 4 * n * int(np.prod(image_shape)) <= _KEEP_IMAGES_BYTES
  stored = np.zeros((n, *image_shape), np.float32) if keep_images and small else None
  # Each process reads its rows of every batch (data.eval_batches); put_batch
  # assembles them into one global array.
  batches = data.eval_batches(source, batch_size, jax.process_index(), jax.process_count())
  for batch in tqdm(batches, total=data.num_eval_batches(source, batch_size), desc="analyze",
                    unit="batch", disable=not progress or jax.process_index() != 0):
    batch["seed"] = content_seeds(batch["image"])
    fields = {f: batch[f] for f in ("image", "label", "index", "mask", "seed")}
    if with_shared == "images":
      fields["shared"] = shared_images[np.minimum(batch["index"], n - 1)]
    tallies, out, x_adv = step(tallies, variables, shared_variables,
                               sharding.put_batch(mesh, fields), key, np.float32(eps_scale))
    out = jax.device_get(out)
    keep = out["mask"]
    rows = out["index"][keep]
    labels[rows] = out["label"][keep]
    for s in predicted:
      predicted[s][rows] = out["pred"][s][keep]
    for l in layers:
      cosine[l][rows] = out["cos"][l][keep]
    if stored is not None:
      x_adv = multihost_utils.process_allgather(x_adv, tiled=True)
      stored[rows] = x_adv[keep]
  tallies = jax.device_get(_stream_results(tallies))
  return Extracted(tallies, labels, predicted, cosine, stored)


_stream_results = jax.jit(consistency.stream_results)  # compiled once per tree of streams


def adversarial_images(model, variables, source, spec, ids, *, key, batch_size) -> np.ndarray:
  """The adversarial images `ids` of a split too large to keep them, made again.

  Their batches are attacked again whole (same composition and padding as in
  `extract`), so the images are the analysed ones to the last bit.
  """
  ids, n = np.asarray(ids), len(source)
  attack = jax.jit(lambda v, x, y, seeds: spec(
      model.apply, v, x, y, jax.vmap(lambda s: jax.random.fold_in(key, s))(seeds)))
  out = None
  for b in np.unique(ids // batch_size):
    idx = np.arange(b * batch_size, (b + 1) * batch_size)
    batch = data.to_model_input(source.get(np.minimum(idx, n - 1)))
    x_adv = np.asarray(attack(variables, batch["image"], batch["label"],
                              content_seeds(batch["image"])))
    if out is None:
      out = np.zeros((len(ids), *x_adv.shape[1:]), np.float32)
    rows = ids // batch_size == b
    out[rows] = x_adv[ids[rows] - b * batch_size]
  return out
