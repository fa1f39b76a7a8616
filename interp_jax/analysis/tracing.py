"""Tracing predictions to neurons, and detecting adversarial inputs by them.

    results, examples = explain(run, cfg, analysis_results, dissection_results)

analysis_results: the run's AnalysisResults; dissection_results: its
DissectionResults, or None. results: a TracingResults (analysis/results.py).

1. Profiles: each neuron of the layer's top-k images on a split the detector
   is not scored on (`cfg.profile_split`, train by default), one streaming
   forward pass; their class histograms are the neurons' profiles.
2. Detection: `cfg.num_images` test images (chosen by content) and their FGSM
   and PGD versions; one jitted step per batch attacks, computes the
   prediction difference of every neuron (measures/influence.py) and the
   disagreement score D(x) (measures/detection.py); ROC AUC of clean against
   adversarial, over all images and over correctly classified clean images
   against successful attacks.
3. Examples: a clean image that PGD fools, its adversarial version, a
   misclassified clean image (and the test images `cfg.images`), each with
   its most influential neurons, their top images (from the analysis),
   consistency and dissection concept; computed here so the page only draws.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from interp_jax import attacks, data, losses, models
from interp_jax.analysis import results as R
from interp_jax.attacks import batches as ab
from interp_jax.analysis.settings import decisive_layer
from interp_jax.default_config import tracing_config
from interp_jax.errors import UserError
from interp_jax.measures import consistency, detection, influence
from interp_jax.records import as_saved

default_config = tracing_config  # the config's `tracing` section (default_config.py)


@dataclasses.dataclass
class Example:
  """One explained image: its top neurons, each with its top images (for the page)."""
  kind: str
  title: str
  image: np.ndarray           # [H, W, 3] float32
  neurons: tuple              # the NeuronRows of its ExampleRecord
  tiles: np.ndarray           # [neurons, T, H, W, 3] the neurons' top analysed images
  captions: list              # [neurons][T] class names


def check_values(cfg) -> None:
  """The checks that need no run (a reproduction makes them before training)."""
  if cfg.ablation not in ("zero", "mean"):
    raise UserError(f"unknown ablation {cfg.ablation!r}; use zero or mean")
  for a in cfg.attacks:
    if a != "adaptive":
      attacks.by_name(a)
  if cfg.adaptive_weight < 0:
    raise UserError(f"adaptive_weight must be >= 0, got {cfg.adaptive_weight}")
  if cfg.top < 1 or cfg.num_images < 2 or cfg.batch_size < 1 or cfg.profile_images < 2:
    raise UserError("top, num_images, profile_images and batch_size must be positive "
                    "(num_images, profile_images at least 2)")
  if min(cfg.tiles, cfg.neurons_shown, cfg.reference_images) < 1 or cfg.neuron_chunk < 0:
    raise UserError("tiles, neurons_shown and reference_images must be positive and "
                    "neuron_chunk >= 0")
  if cfg.profile_split == "test":
    raise UserError("profile_split must not be test: the neurons' profiles would come from "
                    "the images the detector is scored on")


def check(cfg, run, analysis_results) -> tuple[str, dict]:
  """Validates cfg before compute: (layer, analysis settings)."""
  check_values(cfg)
  layers = analysis_results.layers
  layer = cfg.layer or decisive_layer(run.config, run.model.layer_names)
  if layer not in layers:
    raise UserError(f"layer {layer!r} was not analysed; the analysis has {', '.join(layers)} "
                    "(rerun analyze with that layer)")
  n_test = run.meta.splits.get("test", 0)
  bad = [i for i in cfg.images if not 0 <= int(i) < n_test]
  if bad:
    raise UserError(f"images {bad} are not indices of the {n_test} test images")
  if cfg.profile_split not in run.meta.splits:
    raise UserError(f"the data set has no split {cfg.profile_split!r}")
  k = int(analysis_results.settings["k"])
  if min(cfg.profile_images, run.meta.splits[cfg.profile_split]) <= k:
    raise UserError(f"the profiles need more than k = {k} images of {cfg.profile_split}")
  try:
    influence.check_model(run.model, layer)
  except ValueError as e:
    raise UserError(str(e)) from None
  return layer, analysis_results.settings


def profiles(model, variables, source, layer, k, batch_size, num_classes, activation="max",
             progress=True):
  """[N, K] class profiles of the layer's neurons from their top-k images of `source`
  (ranked by `activation`, the analysis's spatial max or mean), and which are included."""
  step = jax.jit(lambda t, v, x, ids, ok: consistency.topk_update(
      t, consistency.neuron_activations(
          models.apply_with_features(model, v, x, (layer,))[1][layer], activation), ids, ok))
  shape = jax.eval_shape(lambda x: models.apply_with_features(model, variables, x, (layer,))[1],
                         jnp.zeros((1, *source.get(np.array([0]))["image"].shape[1:])))
  tally = consistency.topk_init(shape[layer].shape[-1], k + 1)
  labels = np.zeros(len(source), np.int32)
  for b in tqdm(data.eval_batches(source, batch_size), total=data.num_eval_batches(
      source, batch_size), desc="explain: profiles", unit="batch", disable=not progress):
    tally = step(tally, variables, b["image"], b["index"], b["mask"])
    labels[b["index"][b["mask"]]] = b["label"][b["mask"]]
  values, ids = jax.device_get(tally)
  included = np.asarray(consistency.topk_is_defined(values, k))
  return detection.class_profiles(ids[:, :k], labels, num_classes, included), included


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: a restored model's
class DetectorAware:                             # options may hold lists
  """The model as an attacker who knows the detector sees it: attacks.pgd ascends
  `attack_loss` = CE(x, y) - weight * D(x), so its images fool the model while their
  influential neurons agree with the class they are pushed to. `variables` holds the
  model's variables, the neurons' profiles and the ablation fill."""
  model: object
  layer: str
  top: int
  weight: float
  neuron_chunk: int | None = None

  def __call__(self, variables, x):
    return self.model.apply(variables["model"], x)

  def attack_loss(self, variables, x, y):
    logits = self.model.apply(variables["model"], x)
    pred = jnp.argmax(jax.lax.stop_gradient(logits), -1)
    pd = influence.prediction_difference(self.model, variables["model"], x, self.layer,
                                         classes=pred, fill=variables["fill"],
                                         neuron_chunk=self.neuron_chunk)
    score = detection.disagreement(pd, pred, variables["profile"], self.top)
    return losses.cross_entropy(logits, y) - self.weight * score


def _specs(settings, names):
  eps = float(settings["eps"])
  out = {}
  for name in names:
    if name == "fgsm":
      out[name] = attacks.AttackSpec("fgsm", eps, settings["norm"])
    else:
      out[name] = attacks.AttackSpec("pgd" if name == "adaptive" else name, eps,
                                     settings["norm"], int(settings["steps"]),
                                     settings["step_size"] or None)
  return out


def _step(model, layer, specs, top, chunk, weight):
  """The jitted per-batch step (attacks.batches): every attack, then each set's
  prediction, PD, top neurons and score D; returns them and the attacked images (fetched
  only for the examples). Called as step(variables, batch, key, extra={"fill", "profile"})."""
  aware = DetectorAware(model, layer, top, weight, chunk)
  sets = {a: ab.Attack(spec, aware, lambda v, extra: {"model": v, **extra}) if a == "adaptive"
          else spec for a, spec in specs.items()}

  def readout(v, seen, batch, extra):
    out = {}
    for name, images in seen.images.items():
      pred = jnp.argmax(seen.logits[name], -1)
      pd = influence.prediction_difference(model, v, images, layer, fill=extra["fill"],
                                           neuron_chunk=chunk)
      ids, values = influence.top_neurons(pd, top)
      out[name] = {"pred": pred, "score": detection.disagreement(pd, pred, extra["profile"], top),
                   "top_ids": ids, "top_pd": values}
    return {"sets": out, "label": batch["label"], "seed": batch["seed"],
            "index": batch["index"], "mask": batch["mask"]}

  return ab.attacked_step(model, sets, readout=readout)


def explain(run, cfg, analysis_results, dissection_results=None, progress=True):
  """Returns (TracingResults, [Example]); see the module docstring."""
  layer, settings = check(cfg, run, analysis_results)
  key = jax.random.key(cfg.seed)
  k = int(settings["k"])
  profile_src = data.sample_by_content(data.open_split(run.config.dataset, cfg.profile_split),
                                       cfg.profile_images)
  profile, profiled = profiles(run.model, run.variables, profile_src, layer, k, cfg.batch_size,
                               run.meta.num_classes, settings.get("activation", "max"), progress)
  fill = jnp.zeros((profile.shape[0],))
  if cfg.ablation == "mean":  # the first reference_images of the profile sample (by content)
    fill = _mean_fill(run, profile_src, layer, cfg.reference_images, cfg.batch_size)
  specs = _specs(settings, cfg.attacks)
  top = min(cfg.top, profile.shape[0])
  chunk = cfg.neuron_chunk or None
  step = _step(run.model, layer, specs, top, chunk, float(cfg.adaptive_weight))
  chosen = data.sample_by_content(data.open_split(run.config.dataset, "test"), cfg.num_images)
  extra = {"fill": fill, "profile": profile}
  rows = _score(step, run, chosen, cfg.batch_size, key, extra, progress)
  examples, records = _examples(
      run, cfg, layer, analysis_results, dissection_results, rows, chosen,
      lambda b: jax.device_get(step(run.variables, b, key, extra=extra)), profile)
  results = R.TracingResults(
      layer=layer, ablation=cfg.ablation,
      settings=as_saved(cfg.to_dict()),  # as results.json holds it
      profile=R.Profile(split=cfg.profile_split, num_images=len(profile_src), k=k,
                        num_included=int(profiled.sum()), num_neurons=int(len(profiled))),
      accuracy={n: float(np.mean(rows.sets[n]["pred"] == rows.labels))
                for n in ("clean", *specs)},
      detection=_detection(rows, specs), examples=tuple(records))
  return results, examples


def _mean_fill(run, source, layer, count, batch_size):
  """The layer's mean activation map over the first `count` images of source."""
  ref = data.FirstN(source, count)
  total, n = 0.0, 0
  for b in data.eval_batches(ref, batch_size):
    feats = models.apply_with_features(run.model, run.variables, b["image"][b["mask"]],
                                       (layer,))[1][layer]
    total, n = total + feats.sum(0), n + int(b["mask"].sum())
  return total / n


@dataclasses.dataclass(frozen=True)
class ScoredSample:
  """The scored sample, image i at row i of each array (position i of `chosen`)."""
  sets: dict            # "clean" and each attack -> {"pred", "score", "top_ids", "top_pd"}
  labels: np.ndarray    # [n]
  seeds: np.ndarray     # [n] content hashes: "first" by content, not by storage


def _score(step, run, chosen, batch_size, key, extra, progress) -> ScoredSample:
  """Every scored image's prediction, score and top neurons, clean and per attack."""
  acc = ab.Accumulator(len(chosen))
  for _, b in ab.over(chosen, batch_size, desc="explain: detection", progress=progress,
                      fields=("image", "label", "index", "mask", "seed")):
    acc.add_rows(step(run.variables, b, key, extra=extra)[0])  # the images stay on the device
  rows = acc.rows
  return ScoredSample(sets=rows["sets"], labels=rows["label"], seeds=rows["seed"])


def _detection(rows: ScoredSample, specs) -> R.Detection:
  clean, labels = rows.sets["clean"], rows.labels
  correct = clean["pred"] == labels
  entries = {}
  for name in specs:
    adv = rows.sets[name]
    fooled = correct & (adv["pred"] != labels)
    fpr, tpr, _ = detection.roc_curve(clean["score"], adv["score"])
    entries[name] = R.DetectionEntry(
        auc=detection.roc_auc(clean["score"], adv["score"]),
        num_clean=int(len(clean["score"])), num_adversarial=int(len(adv["score"])),
        success_rate=float(fooled.sum() / max(correct.sum(), 1)),
        adversarial_mean=float(adv["score"].mean()),
        roc=R.Roc(tuple(fpr.round(5).tolist()), tuple(tpr.round(5).tolist())),
        auc_successful=(detection.roc_auc(clean["score"][correct], adv["score"][fooled])
                        if correct.any() and fooled.any() else None),
        num_successful=int(fooled.sum()))
  return R.Detection(score="class disagreement of the influential neurons "
                           "(measures/detection.py)",
                     clean_mean=float(clean["score"].mean()), attacks=entries)


def _neuron_rows(ids, pds, pred, layer_info, dis_layer, profile, class_names) -> tuple:
  real = layer_info.sets["real"]
  detects = dis_layer.sets["real"] if dis_layer is not None else None
  return tuple(
      R.NeuronRow(neuron=int(n), pd=round(float(pd), 6), consistency=real.per_neuron[n],
                  concept=detects.concept[n] if detects and detects.detector[n] else None,
                  profile_agreement=round(float(profile[n, pred]), 4),
                  profile_class=class_names[int(np.argmax(profile[n]))])
      for n, pd in zip(ids, pds))


def _picks(rows: ScoredSample) -> list:
  """(kind, set, position in the scored sample): the clean image PGD fools first and its
  PGD version, and the first misclassified image, "first" by content hash (not storage)."""
  clean, labels = rows.sets["clean"], rows.labels
  first = lambda mask: int(np.flatnonzero(mask)[np.argmin(rows.seeds[mask])])
  picks = []
  if "pgd" in rows.sets:
    fooled = (clean["pred"] == labels) & (rows.sets["pgd"]["pred"] != labels)
    if fooled.any():
      pos = first(fooled)
      picks += [("clean", "clean", pos), ("adversarial (PGD)", "pgd", pos)]
  wrong = clean["pred"] != labels
  if wrong.any():
    picks.append(("misclassified", "clean", first(wrong)))
  return picks


def _examples(run, cfg, layer, analysis, dissection, rows, chosen, single, profile):
  """The examples and their records, computed again together (`single`: the scoring
  step on one batch), image and numbers from the same call: the image shown is the one
  the numbers describe."""
  names = run.meta.class_names
  test_ids = chosen.indices if isinstance(chosen, data.Subset) else np.arange(len(chosen))
  test = data.open_split(run.config.dataset, "test")
  wanted = [(kind, which, test, int(test_ids[pos])) for kind, which, pos in _picks(rows)]
  wanted += [("requested", "clean", test, int(i)) for i in cfg.images]
  if not wanted:
    return [], []
  layer_info = analysis.layers[layer]
  dis_layer = dissection.layers.get(layer) if dissection is not None else None
  eval_src = _analysis_source(run, analysis)
  top = layer_info.sets["real"].topk_indices
  # Every example in one batch of the scoring step's size: no second compilation.
  size = cfg.batch_size
  raw = test.get(np.array([t for *_, t in wanted], np.int64))
  examples, records = [], []
  for start in range(0, len(wanted), size):
    part = {f: v[start:start + size] for f, v in raw.items()}
    n = len(part["image"])
    b = data.to_model_input({f: np.concatenate([v, np.repeat(v[-1:], size - n, 0)])
                             for f, v in part.items()})
    b = {"image": b["image"], "label": b["label"], "index": np.arange(size),
         "mask": np.arange(size) < n, "seed": ab.content_seeds(b["image"])}
    out, images = single(b)
    out, images = out["sets"], {"clean": b["image"], **images}
    for j, (kind, which, _, test_index) in enumerate(wanted[start:start + n]):
      o = {f: v[j] for f, v in out[which].items()}
      predicted = int(o["pred"])
      rec = R.ExampleRecord(
          kind=kind, test_index=test_index, label=int(b["label"][j]), predicted=predicted,
          score=float(o["score"]),
          neurons=_neuron_rows(o["top_ids"][:cfg.neurons_shown],
                               o["top_pd"][:cfg.neurons_shown], predicted, layer_info,
                               dis_layer, profile, names))
      tiles, captions = _tiles(eval_src, top, [m.neuron for m in rec.neurons], cfg.tiles,
                               names)
      title = (f"{kind}: test image {test_index}, true {names[rec.label]}, "
               f"predicted {names[rec.predicted]} (D = {rec.score:.2f})")
      examples.append(Example(kind, title, np.asarray(images[which][j]), rec.neurons, tiles,
                              captions))
      records.append(rec)
  return examples, records


def _analysis_source(run, analysis):
  from interp_jax.analysis.model_analysis import analysed_source
  s = analysis.settings
  return analysed_source(run.config.dataset, s.get("split", "test"),
                         s.get("requested", s).get("num_images", 0),
                         s.get("test_share", 0.0), run.config.seed)


def _tiles(source, topk_indices, neurons, count, class_names):
  ids = [list(topk_indices[n][:count]) for n in neurons]
  width = max([len(i) for i in ids] + [1])
  first = source.get(np.array([0]))["image"]
  tiles = np.zeros((len(neurons), width, *first.shape[1:]), np.float32)
  captions = []
  for j, row in enumerate(ids):
    if row:
      b = source.get(np.asarray(row, np.int64))
      tiles[j, :len(row)] = b["image"].astype(np.float32) / 255
      captions.append([class_names[int(l)] for l in b["label"]])
    else:
      captions.append([])
  return tiles, captions
