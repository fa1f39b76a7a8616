"""The attacked-batch pipeline: what every evaluation that attacks images shares.

    def readout(variables, seen, batch, extra):       # seen: a Forward
      return {"pred": jnp.argmax(seen.logits["adversarial"], -1),
              "index": batch["index"], "mask": batch["mask"]}

    step = attacked_step(model, {"adversarial": spec}, readout=readout, mesh=mesh)
    acc = Accumulator(len(source))
    for _, placed in over(source, 256, desc="pgd", mesh=mesh):
      out, images = step(variables, placed, key)
      acc.add_rows(out, images["adversarial"])
    acc.rows["pred"], acc.images                      # [N], [N, H, W, C] by image index

Three parts, used by extraction, robustness, dissection's adversarial pass,
tracing and the trainer's evaluation:

1. `attacked_step`: one jitted function per batch: each image's attack key,
   the attacks (attacks.AttackSpec), one forward pass per set of images
   (clean, attacked, or given) with the requested features
   (models.apply_with_features), and a `readout` of the caller's that turns
   them into the numbers it keeps. Sharded over the mesh: the batch is split
   over the devices, the readout leaves replicated, the images sharded.
2. `over` / `stream`: one pass over a source's batches with a progress bar
   named after the pass; each batch gains its images' content seeds and is
   put on the mesh.
3. `Accumulator`: host-side; each image's rows written at its index, and
   sums added over batches.

Image i's attack key is fold_in(key, content hash of its pixels)
(`image_keys`), so an image's adversarial version does not depend on where a
split stores it, on the batch it lands in, or on the batch size: every
evaluation sees the same adversarial version of an image. The trainer's
evaluation keys a whole batch instead (`keyed_by="batch"`; its key is
fold_in(key(seed), batch number)).
"""

import dataclasses
from typing import Callable, Mapping, NamedTuple

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from interp_jax import data, models, sharding
from interp_jax.attacks.spec import AttackSpec

content_seeds = data.content_hashes  # an image's random start is seeded by its pixels


def image_keys(key, seeds):
  """[B] PRNG keys, image i's = fold_in(key, seeds[i]) (its content seed)."""
  return jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.asarray(seeds))


def _own(variables, extra):
  return variables


@dataclasses.dataclass(frozen=True, eq=False)
class Attack:
  """One attacked set made against another function than the analysed model's own: `spec`
  attacks `apply_fn` (the model's apply when None) with `variables(model variables,
  extra)`, extra being the step's `extra` argument (another model's variables, say)."""
  spec: AttackSpec
  apply_fn: Callable | None = None
  variables: Callable = _own


class Forward(NamedTuple):
  """What a readout sees of a batch: every set's images, logits and features."""
  images: dict     # set -> [B, H, W, C]
  logits: dict     # set -> [B, classes] (the sets given a forward pass)
  features: dict   # set -> {layer: activation}
  labels: jax.Array  # [B] the classes attacked away from (batch["label"], else predicted)


def attacked_fn(model, attack_sets: Mapping[str, "AttackSpec | Attack"], *,
                layers=(), forward=None, clean="clean", given=(), readout=None,
                keyed_by="pixels"):
  """The pure step(variables, batch, key, scale=None, extra=None) -> (readout, images).

  Args:
    model: the Flax model read (and attacked, unless an Attack names another function).
    attack_sets: {set name: AttackSpec or Attack}, the sets the step makes.
    layers: the layers whose features the forward passes return.
    forward: the sets given a forward pass (clean, given and attacked); None: all.
    clean: the name of the clean set (batch["image"]).
    given: sets made elsewhere, read from batch[name].
    readout: (variables, Forward, batch, extra) -> a pytree; None: {}.
    keyed_by: "pixels": image i is attacked with fold_in(key, batch["seed"][i]);
      "batch": every image with `key` itself.

  The step's batch holds "image", "seed" (keyed_by="pixels"), "label" (else the
  model's predictions are attacked away from) and the given sets. `scale`, a
  traced factor, multiplies every attack's eps (and explicit step size), so
  an eps sweep compiles once. `images` holds the attacked sets.
  """
  if keyed_by not in ("pixels", "batch"):
    raise ValueError(f"keyed_by must be 'pixels' or 'batch', got {keyed_by!r}")
  specs = {s: a if isinstance(a, Attack) else Attack(a) for s, a in attack_sets.items()}
  layers = tuple(layers)

  def apply(variables, x):
    if layers:
      return models.apply_with_features(model, variables, x, layers)
    return model.apply(variables, x), {}

  def step(variables, batch, key, scale=None, extra=None):
    x = batch["image"]
    y = batch["label"] if "label" in batch else jnp.argmax(model.apply(variables, x), -1)
    keys = image_keys(key, batch["seed"]) if keyed_by == "pixels" else key
    made = {}
    for name, a in specs.items():
      budget = {}
      if scale is not None:
        budget["eps"] = a.spec.eps * scale
        if a.spec.step_size is not None and "step_size" in a.spec.options():
          budget["step_size"] = a.spec.step_size * scale
      made[name] = a.spec(a.apply_fn or model.apply, a.variables(variables, extra), x, y, keys,
                          **budget)
    images = {clean: x, **{g: batch[g] for g in given}, **made}
    wanted = images if forward is None else {s: images[s] for s in forward}
    outs = {s: apply(variables, v) for s, v in wanted.items()}
    seen = Forward(images, {s: o[0] for s, o in outs.items()},
                   {s: o[1] for s, o in outs.items()}, y)
    return ({} if readout is None else readout(variables, seen, batch, extra)), made

  return step


def attacked_step(model, attack_sets, *, mesh=None, **options):
  """attacked_fn(model, attack_sets, **options), jitted: with a mesh, the readout leaves
  replicated (every process reads the whole batch) and the images sharded like the batch."""
  step = attacked_fn(model, attack_sets, **options)
  if mesh is None:
    return jax.jit(step)
  return jax.jit(step, out_shardings=(sharding.replicated(mesh), sharding.batch_sharded(mesh)))


def stream(batches, *, desc, total=None, mesh=None, fields=None, extend=None, seeds=True,
           progress=True):
  """Yields (host batch, device batch) for each of `batches`, behind a progress bar `desc`.

  The host batch gains "seed", its images' content seeds (unless seeds=False),
  and the fields `extend(batch)` returns (images made elsewhere, a mask); the
  device batch is its `fields` (all when None) and those, put on the mesh:
  each process's rows assembled into one global array (as they are without a mesh).
  """
  for batch in tqdm(batches, total=total, desc=desc, unit="batch",
                    disable=not progress or jax.process_index() != 0):
    if seeds:
      batch["seed"] = content_seeds(batch["image"])
    added = extend(batch) if extend is not None else {}
    batch.update(added)
    chosen = {f: batch[f] for f in (batch if fields is None else (*fields, *added))}
    yield batch, (chosen if mesh is None else sharding.put_batch(mesh, chosen))


def over(source, batch_size: int, *, desc, mesh=None, **options):
  """`stream` over a source in index order (data.eval_batches: the last batch padded,
  "mask" marks real rows, "index" the image ids); with a mesh, each process reads its
  rows of every batch."""
  split = (jax.process_index(), jax.process_count()) if mesh is not None else (0, 1)
  return stream(data.eval_batches(source, batch_size, *split), desc=desc, mesh=mesh,
                total=data.num_eval_batches(source, batch_size), **options)


class Accumulator:
  """Host-side results of a pass: each image's rows at its index, and sums over batches.

      acc = Accumulator(n)
      acc.add_rows({"pred": ..., "index": ..., "mask": ...}, images)  # per batch
      acc.rows["pred"], acc.images                                    # [n, ...]
      acc.add_sums({"correct": ...}); acc.sums["correct"]
  """

  def __init__(self, n: int):
    self.n, self.rows, self.images, self.sums = n, None, None, {}

  def add_rows(self, out, images=None) -> None:
    """out: {"index": [B], "mask": [B], field: pytree of [B, ...] arrays}, replicated;
    images: a pytree of [B, ...] arrays sharded over the batch, gathered from every
    process. Row b lands at index[b] when mask[b]."""
    out = jax.device_get(out)
    keep = np.asarray(out["mask"], bool)
    at = np.asarray(out["index"])[keep]
    fields = {k: v for k, v in out.items() if k not in ("index", "mask")}
    self.rows = self._write(self.rows, fields, at, keep)
    if images is not None:
      gathered = jax.tree.map(lambda a: multihost_utils.process_allgather(a, tiled=True), images)
      self.images = self._write(self.images, gathered, at, keep)

  def _write(self, into, values, at, keep):
    if into is None:
      into = jax.tree.map(lambda v: np.zeros((self.n, *np.shape(v)[1:]), np.asarray(v).dtype),
                          values)
    for target, v in zip(jax.tree.leaves(into), jax.tree.leaves(values)):
      target[at] = np.asarray(v)[keep]
    return into

  def add_sums(self, sums) -> None:
    """Adds a batch's sums (a flat dict of scalars), fetched first: an eager add of
    replicated arrays would be one more multi-device program between the jitted ones."""
    for k, v in jax.device_get(dict(sums)).items():
      self.sums[k] = self.sums[k] + v if k in self.sums else v
