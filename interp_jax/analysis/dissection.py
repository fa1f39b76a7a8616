"""Network dissection of a model on a probe set, real images against their adversarial versions.

    results, iou, tiles = dissect(model, variables, probe, ("conv2", "conv3"), attack=spec,
                                  key=jax.random.key(0))

Three streaming passes over the probe set, each one jitted step per batch
(memory independent of the probe set's size):

1. each unit's activation range, and its top images (by spatial max) for the page;
2. a histogram per unit in that range, from which T_n, the top 0.5% quantile,
   is read (measures/concept_iou.py states its error bound);
3. IoU(unit, concept) on the real images and on their adversarial versions.

The adversarial images are thresholded with the real images' T_n: a unit's
"firing" is defined once, so a change of its best concept is a change of
where it fires, not of the scale. They are the analysis attack's images:
given (`adversarial`, in probe order) or made here, each image seeded by its
pixels as in the analysis, so both see the same images. Images without a
class label (a Broden probe) are attacked away from the model's prediction.
"""

import dataclasses
import inspect
import os

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np

from interp_jax import attacks, models, sharding
from interp_jax.analysis import results as R
from interp_jax.attacks import batches as ab
from interp_jax.default_config import dissection_config
from interp_jax.errors import UserError
from interp_jax.measures import concept_iou as dis, consistency
from interp_jax.records import as_saved

default_config = dissection_config  # the config's `dissection` section (default_config.py)

SETS = ("real", "adversarial")


def check_values(cfg) -> None:
  """The checks that need no run (a reproduction makes them before training)."""
  attacks.by_name(cfg.attack)
  if not 0 < cfg.quantile < 1:
    raise UserError(f"quantile must be in (0, 1), got {cfg.quantile}")
  if cfg.bins < 2 or cfg.batch_size < 1 or cfg.tiles < 1 or cfg.units_shown < 0:
    raise UserError("bins (>= 2), batch_size, tiles must be positive and units_shown >= 0")
  if cfg.batch_size % jax.device_count():
    raise UserError(f"batch_size {cfg.batch_size} is not divisible by the "
                    f"{jax.device_count()} devices")
  if not 0 <= cfg.iou_threshold < 1:
    raise UserError(f"iou_threshold must be in [0, 1), got {cfg.iou_threshold}")
  if cfg.broden and not os.path.isdir(cfg.broden):
    raise UserError(f"the Broden directory {cfg.broden} does not exist")


def check(cfg, run) -> tuple[tuple[str, ...], attacks.AttackSpec]:
  """Validates cfg against the run before compute: (layers, attack spec); raises UserError."""
  check_values(cfg)
  spec = attacks.AttackSpec.from_section(cfg, run.config.adv.eps).check(run.meta.image_shape)
  names = run.model.layer_names
  shapes = jax.eval_shape(
      lambda x: models.apply_with_features(run.model, run.variables, x)[1],
      jnp.zeros((1, *run.meta.image_shape), jnp.float32))
  layers = tuple(cfg.layers) or tuple(n for n in names if n != "logits" and shapes[n].ndim == 4)
  unknown = [l for l in layers if l not in names]
  if unknown:
    raise UserError(f"the model has no layer {unknown}; its layers are {', '.join(names)}")
  return layers, spec


@dataclasses.dataclass
class UnitTiles:
  """One unit's top probe images with where it fires, real and adversarial (for the page)."""
  layer: str
  unit: int
  title: str
  real: np.ndarray            # [T, H, W, 3] float32 in [0, 1]
  adversarial: np.ndarray     # [T, H, W, 3]
  real_fired: np.ndarray      # [T, h, w] bool: upsampled activation > T_n (mask resolution)
  adversarial_fired: np.ndarray
  concept_mask: np.ndarray    # [T, h, w] bool: the unit's real-image concept (zeros if none)
  real_label: str = ""        # its concept and IoU on real images ("none (0.03)")
  adversarial_label: str = ""


def _batches(source, batch_size: int, labels: bool = True):
  """Index-order batches padded to a fixed size (`mask` marks real rows), this process's
  rows; the label maps only when asked (only the IoU pass reads them)."""
  n, p, count = len(source), jax.process_index(), jax.process_count()
  local = batch_size // count
  # A source that takes `labels` (Broden's, concept_shapes') skips decoding masks the
  # first two passes do not read; one of the plain get(indices) kind reads them anyway.
  only = {} if labels or "labels" not in inspect.signature(source.get).parameters else {
      "labels": False}
  for start in range(0, n, batch_size):
    idx = np.arange(start, start + batch_size)[p * local:(p + 1) * local]
    batch = source.get(np.minimum(idx, n - 1), **only)
    out = {"image": batch["image"].astype(np.float32) / np.float32(255), "index": idx,
           "mask": idx < n}
    if labels:
      out["labels"] = batch["labels"].astype(np.int32)
    if "label" in batch:
      out["label"] = batch["label"].astype(np.int32)
    yield out


class PassSteps:
  """The three jitted per-batch steps of one model and set of layers.

  Passes 2 and 3 add counts, so each device counts its own images (shard_map)
  and the counts are summed over devices once per batch: counted on a sharded
  global batch, XLA moved images between devices inside the IoU scan. Pass 3
  counts batch["adversarial"], or first makes it with `attack` in the
  attacked-batch step the analysis uses (`self.attack`).
  """

  def __init__(self, model, layers, attack, mesh, with_labels, concept_category):
    self.layers, everywhere = tuple(layers), sharding.replicated(mesh)
    feats = lambda v, x: models.apply_with_features(model, v, x, self.layers)
    axis = mesh.axis_names[0]
    self.attack = None if attack is None else ab.attacked_step(
        model, {"adversarial": attack}, forward=(), mesh=mesh)
    self.attack_fields = ("image", "seed") + (("label",) if with_labels else ())

    def per_device(fn, in_specs):
      local = jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=P(), check_vma=False)
      return jax.jit(local, out_shardings=everywhere)

    def added(tally, counts):
      return jax.tree.map(lambda t, c: t + jax.lax.psum(c, axis), tally, counts)

    def first(state, v, batch):
      logits, f = feats(v, batch["image"])
      ok = batch["mask"]
      return {l: {"range": dis.range_update(state[l]["range"], f[l], ok),
                  "top": consistency.topk_update(state[l]["top"],
                                                 consistency.neuron_activations(f[l], "max"),
                                                 batch["index"], ok)} for l in self.layers}

    def second(hist, v, batch, ranges):
      _, f = feats(v, batch["image"])
      return added(hist, {l: dis.histogram_update(jnp.zeros_like(hist[l]), f[l], ranges[l],
                                                  batch["mask"]) for l in self.layers})

    def third(tally, v, batch, t):
      acts = {}
      for name in SETS:
        _, f = feats(v, batch["image" if name == "real" else "adversarial"])
        acts |= {(name, l): f[l] for l in self.layers}
      # Every map of both sets against the batch's masks in one scan (built once).
      counts = dis.iou_update_maps(
          {(s, l): jax.tree.map(jnp.zeros_like, tally[s][l]) for s, l in acts}, acts,
          batch["labels"], {(s, l): t[l] for s, l in acts}, batch["mask"], concept_category)
      return added(tally, {s: {l: counts[(s, l)] for l in self.layers} for s in SETS})

    self.first = jax.jit(first, out_shardings=everywhere)
    self.second = per_device(second, (P(), P(), P(axis), P()))
    self._count = per_device(third, (P(), P(), P(axis), P()))

  def third(self, tally, v, batch, t, key):
    """Pass 3 on one batch: its adversarial images (given, or attacked here with image
    keys folded from `key`), then the IoU counts of both sets."""
    if "adversarial" not in batch:
      made = self.attack(v, {f: batch[f] for f in self.attack_fields}, key)[1]
      batch = {**batch, "adversarial": made["adversarial"]}
    return self._count(tally, v, batch, t)


def dissect(model, variables, probe, layers, *, attack=None, key=None, adversarial=None,
            batch_size: int = 256, bins: int = 2048, quantile: float = dis.QUANTILE,
            iou_threshold: float = dis.DETECTOR_IOU, tiles: int = 6, units_shown: int = 6,
            progress: bool = True):
  """Returns (DissectionResults, {f"{layer}/{set}": IoU [C, K]}, [UnitTiles]); see the
  module doc.

  Args:
    probe: a data.probes.Probe.
    attack: the attacks.AttackSpec making the adversarial versions (unless `adversarial`).
    key: the PRNG key each image's attack key is folded from (the analysis's key).
    adversarial: [N, H, W, C] float32 adversarial versions of the probe images, in probe order.
  """
  n = len(probe.source)
  if adversarial is None and attack is None:
    raise ValueError("dissect needs an attack spec or the adversarial images")
  if adversarial is not None and len(adversarial) != n:
    raise ValueError(f"{len(adversarial)} adversarial images for a probe set of {n}")
  mesh = sharding.data_mesh()
  if batch_size % mesh.size:
    raise ValueError(f"batch_size {batch_size} is not divisible by the {mesh.size} devices")
  key = jax.random.key(0) if key is None else key
  first = probe.source.get(np.array([0]))
  shapes = jax.eval_shape(lambda x: models.apply_with_features(model, variables, x, layers)[1],
                          jnp.zeros((1, *first["image"].shape[1:]), jnp.float32))
  units = {l: shapes[l].shape[-1] for l in layers}
  categories = sorted(set(probe.concepts.categories))
  concept_category = np.array([categories.index(c) for c in probe.concepts.categories], np.int32)
  steps = PassSteps(model, layers, attack, mesh, "label" in first, concept_category)
  passes = _Passes(probe.source, batch_size, mesh, progress)
  state = passes.first(steps, variables, units, tiles)
  ranges = {l: s["range"] for l, s in state.items()}
  hist = passes.second(steps, variables, units, bins, ranges)
  # Thresholds from host copies: eager jnp ops on arrays spread over several devices
  # launch one small multi-device program each, and on 2 CPU devices XLA's
  # runtime deadlocked in one of them (an all-reduce that one device never joined).
  hist, ranges = jax.device_get((hist, ranges))
  found = {l: dis.thresholds(hist[l], ranges[l], quantile) for l in layers}
  t = {l: v[0] for l, v in found.items()}
  tally = passes.third(steps, variables, units, (len(concept_category), len(categories)), t,
                       key, adversarial)
  tally, state, found = jax.device_get((tally, state, found))
  ious = {f"{l}/{s}": dis.iou(tally[s][l], concept_category) for l in layers for s in SETS}
  # Each concept's share of the probe's labelled pixels: a unit firing on a share q of the
  # positions reaches at most IoU q / share on a concept covering more (the page says so).
  pixels = n * int(np.prod(first["labels"].shape[2:]))
  results = R.DissectionResults(
      probe=probe.name,
      settings=as_saved({  # as results.json holds it: lists, not tuples
          "probe": probe.name, "num_images": n, "layers": list(layers), "quantile": quantile,
          "bins": bins, "iou_threshold": iou_threshold,
          "attack": attack.to_dict() if attack is not None else "given",
          "threshold_from": "real"}),
      concepts=R.Concepts(
          names=tuple(probe.concepts.names), categories=tuple(probe.concepts.categories),
          pixel_share=tuple((np.asarray(tally["real"][layers[0]]["concept"])
                             / pixels).round(6).tolist())),
      layers=_layers(probe, layers, ious, found, state, iou_threshold))
  shown = unit_tiles(model, variables, probe, results, t, attack, key, adversarial, units_shown,
                     batch_size)
  return results, ious, shown


class _Passes:
  """The three streaming passes over a probe source, each with its progress bar."""

  def __init__(self, source, batch_size, mesh, progress):
    self.source, self.batch_size, self.n = source, batch_size, len(source)
    self.mesh, self.progress = mesh, progress

  def _batches(self, desc, labels=False, seeds=False, extend=None):
    return ab.stream(_batches(self.source, self.batch_size, labels), desc=desc,
                     total=-(-self.n // self.batch_size), mesh=self.mesh, seeds=seeds,
                     extend=extend, progress=self.progress)

  def first(self, steps, variables, units, tiles):
    state = {l: {"range": dis.range_init(c), "top": consistency.topk_init(c, tiles)}
             for l, c in units.items()}
    for _, b in self._batches("dissect 1/3 range"):
      state = steps.first(state, variables, b)
    return state

  def second(self, steps, variables, units, bins, ranges):
    hist = {l: dis.histogram_init(c, bins) for l, c in units.items()}
    for _, b in self._batches("dissect 2/3 quantile"):
      hist = steps.second(hist, variables, b, ranges)
    return hist

  def third(self, steps, variables, units, sizes, t, key, adversarial):
    tally = {s: {l: dis.iou_init(c, *sizes) for l, c in units.items()} for s in SETS}
    given = None
    if adversarial is not None:
      given = lambda b: {"adversarial": adversarial[np.minimum(b["index"], self.n - 1)]}
    for _, b in self._batches("dissect 3/3 IoU", labels=True, seeds=adversarial is None,
                              extend=given):
      tally = steps.third(tally, variables, b, t, key)
    return tally


def _set_summary(scores, concepts, threshold) -> R.Detectors:
  best, value, is_det = dis.detectors(scores, threshold)
  cats = sorted(set(concepts.categories))
  det_cats = [concepts.categories[c] for c, d in zip(best, is_det) if d]
  det_names = [concepts.names[c] for c, d in zip(best, is_det) if d]
  return R.Detectors(
      concept=tuple(concepts.names[c] if c >= 0 else None for c in best),
      iou=tuple(round(float(v), 6) for v in value),
      detector=tuple(bool(d) for d in is_det),
      num_detectors=int(is_det.sum()),
      detectors_per_category={c: det_cats.count(c) for c in cats},
      detectors_per_concept={c: det_names.count(c) for c in sorted(set(det_names))},
      mean_best_iou=float(value.mean()) if len(value) else None)


def _layers(probe, layers, ious, found, state, threshold) -> dict[str, R.DissectedLayer]:
  out = {}
  for l in layers:
    sets = {s: _set_summary(ious[f"{l}/{s}"], probe.concepts, threshold) for s in SETS}
    real, adv = sets["real"], sets["adversarial"]
    changed = tuple(
        R.ChangedUnit(unit=u, real=real.concept[u] if real.detector[u] else None,
                      adversarial=adv.concept[u] if adv.detector[u] else None,
                      iou_real=real.iou[u], iou_adversarial=adv.iou[u])
        for u in range(len(real.concept))
        if (real.detector[u] or adv.detector[u])
        and (real.detector[u], real.concept[u]) != (adv.detector[u], adv.concept[u]))
    top = np.asarray(state[l]["top"].indices)
    alive = np.asarray(state[l]["top"].values) > -np.inf
    out[l] = R.DissectedLayer(
        units=len(real.concept),
        threshold=tuple(np.asarray(found[l][0]).round(6).tolist()),
        threshold_error=tuple(np.asarray(found[l][1]).round(6).tolist()),
        sets=sets, changed=changed,
        top_images=tuple(tuple(int(i) for i, a in zip(row, ok) if a)
                         for row, ok in zip(top, alive)))
  return out


def unit_tiles(model, variables, probe, results, thresholds, attack, key, adversarial,
               count: int, batch_size: int = 256) -> list[UnitTiles]:
  """Per layer, the units whose concept changed (then the best real detectors), with their
  top images and where they fire; computed here so the page only draws."""
  names = results.concepts.names
  chosen = []
  for layer, info in results.layers.items():
    real = info.sets["real"]
    units = [c.unit for c in info.changed]
    by_iou = np.argsort(-np.asarray(real.iou), kind="stable")
    units += [int(u) for u in by_iou if real.detector[u] and u not in units]
    for u in units[:count]:
      ids = np.asarray(info.top_images[u], np.int64)
      if len(ids):
        chosen.append((layer, info, u, ids))
  every = np.unique(np.concatenate([ids for *_, ids in chosen])) if chosen else None
  if chosen and adversarial is None:
    made = _attacked(model, variables, probe.source, every, attack, key, batch_size)
  out = []
  for layer, info, u, ids in chosen:
    real = info.sets["real"]
    batch = probe.source.get(ids)
    x = batch["image"].astype(np.float32) / 255
    x_adv = (np.asarray(adversarial[ids]) if adversarial is not None
             else made[np.searchsorted(every, ids)])
    fired = [np.asarray(dis.upsample(models.apply_with_features(
        model, variables, im, (layer,))[1][layer][..., u:u + 1], batch["labels"].shape[2:])
        [..., 0] > thresholds[layer][u]) for im in (x, x_adv)]
    concept = names.index(real.concept[u]) if real.detector[u] else -1
    cmask = (batch["labels"] == concept).any(1) if concept >= 0 else np.zeros_like(fired[0])
    adv = info.sets["adversarial"]
    title = (f"{layer} #{u}: real {_label(real, u)} -> adversarial {_label(adv, u)}")
    out.append(UnitTiles(layer, u, title, x, x_adv, fired[0], fired[1], cmask,
                         _label(real, u), _label(adv, u)))
  return out


def _attacked(model, variables, source, ids, attack, key, batch_size) -> np.ndarray:
  """The adversarial versions of images `ids`, made by the attacked-batch step at most
  batch_size at a time (each image keyed by its pixels: the images pass 3 counted)."""
  step = ab.attacked_step(model, {"adversarial": attack}, forward=())
  out = []
  for start in range(0, len(ids), batch_size):
    batch = source.get(ids[start:start + batch_size])
    fields = {"image": batch["image"].astype(np.float32) / 255}
    fields["seed"] = ab.content_seeds(fields["image"])
    if "label" in batch:
      fields["label"] = batch["label"].astype(np.int32)
    out.append(np.asarray(step(variables, fields, key)[1]["adversarial"]))
  return np.concatenate(out)


def _label(detectors: R.Detectors, u: int) -> str:
  iou = detectors.iou[u]
  return f"{detectors.concept[u]} ({iou:.2f})" if detectors.detector[u] else f"none ({iou:.2f})"
