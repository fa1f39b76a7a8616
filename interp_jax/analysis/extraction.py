"""Extract: one streaming pass over a split that keeps, per layer and set, each
neuron's k + 1 best images, and per image its label and predictions.

    ex = extract(model, variables, source, layers, spec, k=50, key=jax.random.key(0),
                 shared=(source_model.apply, source_variables))

One jitted function per batch attacks the batch and runs the model on real and
adversarial images; a second merges every layer's activations into the running
top-k of each set (through a consistency.MergeQueue: on CPU, up to 2,048 rows
of batches at a time; memory O(neurons x (k + 2,048)), any split size):

- real, adversarial (the model's own white-box attack), mixed (their union:
  adversarial image i has id N + i);
- successful: the adversarial images that changed the model's prediction
  (`successful="changed"`), or of the images it classifies correctly, those
  whose adversarial version it classifies wrongly ("right_to_wrong");
- shared: adversarial images made against another model (`shared`), the
  same inputs for every model compared; or given (`shared_images`), when
  they were kept from that model's own analysis.

Each image's random start comes from a key derived from its pixels, so an
image's adversarial version does not depend on where the split stores it; the
step, the pass and the host-side rows are attacks.batches', which every
evaluation that attacks images shares.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from interp_jax import data, models, sharding
from interp_jax.attacks import batches as ab
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
  success_rule: str = "changed"   # or "right_to_wrong" (settings.SUCCESS_RULES)

  @property
  def successful(self) -> np.ndarray:
    """[N] bool: the attack changed the model's prediction ("changed"), or turned a
    correct prediction wrong ("right_to_wrong")."""
    real, adv = self.predicted["real"], self.predicted["adversarial"]
    if self.success_rule == "right_to_wrong":
      return (real == self.labels) & (adv != self.labels)
    return adv != real


def batch_step(model, layers, spec, activation, n, mesh, with_shared=None,
               shared_apply=None, successful="changed", attacked_given=False):
  """The jitted per-batch function (an attacks.batches.attacked_step): the attacks and
  the forward passes.

  It returns the rows the top-ks merge (`merge_sets`) and the per-image rows,
  both replicated, so every process of a multi-host run merges and reads the
  whole batch, and the adversarial images, sharded (gathered only when kept).
  Called as step(variables, batch, key, scale, shared_variables): `scale`
  multiplies eps (and an explicit step size) as a traced value, so the eps
  curve passes one step to every `extract` call and compiles once.
  with_shared: None, "attack" (made against shared_apply) or "images" (given
  in batch["shared"]); successful: which adversarial images the successful
  set takes (Extracted.successful); attacked_given: the adversarial set is read
  from batch["adversarial"] (made elsewhere, by AutoAttack say), not attacked here.
  """
  sets = {} if attacked_given else {"adversarial": spec}
  if with_shared == "attack":
    sets["shared"] = ab.Attack(spec, shared_apply, lambda v, shared_variables: shared_variables)

  def readout(variables, seen, batch, extra):
    y, ids, valid = seen.labels, batch["index"], batch["mask"]
    pred = {s: jnp.argmax(logits, -1) for s, logits in seen.logits.items()}
    feats = seen.features
    acts = {l: {s: consistency.neuron_activations(f[l], activation) for s, f in feats.items()}
            for l in layers}
    cos = {l: consistency.cosine_similarity(feats["real"][l], feats["adversarial"][l])
           for l in layers}
    if successful == "right_to_wrong":
      success = (pred["real"] == y) & (pred["adversarial"] != y)
    else:
      success = pred["adversarial"] != pred["real"]
    merged = {"acts": acts, "index": ids, "mixed_index": ids + n, "mask": valid,
              "success": valid & success}
    rows = {"pred": pred, "cos": cos, "label": y, "index": ids, "mask": valid}
    return merged, rows

  given = (("adversarial",) if attacked_given else ()) + (
      ("shared",) if with_shared == "images" else ())
  return ab.attacked_step(model, sets, layers=layers, clean="real", given=given,
                          readout=readout, mesh=mesh)


def merge_sets(tallies, rows, counted):
  """Merges a batch's (or a group's) activations into every layer's and set's top-k:
  real, adversarial, mixed (both; adversarial image i has id N + i), successful
  (the adversarial images that changed the prediction) and shared."""
  update = consistency.topk_update
  valid, ids = rows["mask"] & counted, rows["index"]
  new = {}
  for l, acts in rows["acts"].items():
    t, real, adv = tallies[l], acts["real"], acts["adversarial"]
    new[l] = {"real": update(t["real"], real, ids, valid),
              "adversarial": update(t["adversarial"], adv, ids, valid),
              "mixed": update(t["mixed"], jnp.concatenate([real, adv]),
                              jnp.concatenate([ids, rows["mixed_index"]]),
                              jnp.concatenate([valid, valid])),
              "successful": update(t["successful"], adv, ids, rows["success"] & counted)}
    if "shared" in acts:
      new[l]["shared"] = update(t["shared"], acts["shared"], ids, valid)
  return new


def extract(model, variables, source, layers, spec, *, k: int, key, activation="max",
            batch_size=256, shared=None, shared_images=None, eps_scale=1.0, keep_images=True,
            step=None, successful="changed", progress=True, desc="analyze",
            attacked_images=None) -> Extracted:
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
    successful: "changed" or "right_to_wrong", the images of the successful set.
    attacked_images: [N, H, W, C] float32, the model's adversarial set already made (in
      the source's order): read, not attacked (spec and eps_scale then make nothing).
  """
  n = len(source)
  image_shape = source.get(np.array([0]))["image"].shape[1:]
  shape = jax.eval_shape(lambda x: models.apply_with_features(model, variables, x, layers)[1],
                         jnp.zeros((1, *image_shape), jnp.float32))
  with_shared = "images" if shared_images is not None else "attack" if shared else None
  tallies = {l: {s: consistency.topk_init(shape[l].shape[-1], k + 1)
                 for s in ("real", "adversarial", "mixed", "successful")
                 + (("shared",) if with_shared else ())} for l in layers}
  queue = consistency.MergeQueue(merge_sets, consistency.merge_group(batch_size))
  shared_apply, shared_variables = shared if shared is not None else (None, None)
  mesh = sharding.data_mesh()  # the batch is split over the devices (CPU cores too)
  # Placed as the merged ones will be, so the merge compiles once, not twice.
  tallies = jax.device_put(tallies, sharding.replicated(mesh))
  if batch_size % mesh.size:
    raise UserError(f"batch_size {batch_size} is not divisible by the {mesh.size} devices")
  step = step or batch_step(model, tuple(layers), spec, activation, n, mesh, with_shared,
                            shared_apply, successful, attacked_images is not None)
  small = 4 * n * int(np.prod(image_shape)) <= _KEEP_IMAGES_BYTES
  keep = keep_images and small
  made_elsewhere = {"shared": shared_images if with_shared == "images" else None,
                    "adversarial": attacked_images}
  made_elsewhere = {s: a for s, a in made_elsewhere.items() if a is not None}
  given = (lambda b: {s: a[np.minimum(b["index"], n - 1)] for s, a in made_elsewhere.items()}
           ) if made_elsewhere else None
  acc = ab.Accumulator(n)
  for _, placed in ab.over(source, batch_size, desc=desc, mesh=mesh, progress=progress,
                           fields=("image", "label", "index", "mask", "seed"), extend=given):
    (merged, out), made = step(variables, placed, key, np.float32(eps_scale), shared_variables)
    tallies = queue.add(tallies, merged)
    acc.add_rows(out, made.get("adversarial", placed.get("adversarial")) if keep else None)
  tallies = jax.device_get(queue.flush(tallies))
  rows = acc.rows
  return Extracted(tallies, rows["label"], rows["pred"], rows["cos"], acc.images,
                   successful)


def adversarial_images(model, variables, source, spec, ids, *, key, batch_size) -> np.ndarray:
  """The adversarial images `ids` of a split too large to keep them, made again.

  Their batches are attacked again whole (same composition and padding as in
  `extract`), so the images are the analysed ones to the last bit.
  """
  ids, n = np.asarray(ids), len(source)
  step = ab.attacked_step(model, {"adversarial": spec}, forward=())
  out = None
  for b in np.unique(ids // batch_size):
    idx = np.arange(b * batch_size, (b + 1) * batch_size)
    batch = data.to_model_input(source.get(np.minimum(idx, n - 1)))
    batch["seed"] = ab.content_seeds(batch["image"])
    x_adv = np.asarray(step(variables, {f: batch[f] for f in ("image", "label", "seed")},
                            key)[1]["adversarial"])
    if out is None:
      out = np.zeros((len(ids), *x_adv.shape[1:]), np.float32)
    rows = ids // batch_size == b
    out[rows] = x_adv[ids[rows] - b * batch_size]
  return out
