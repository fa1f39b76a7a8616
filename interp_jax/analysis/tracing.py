"""Tracing predictions to neurons, and detecting adversarial inputs by them.

    results, examples = explain(run, cfg, analysis_results, dissection_results)

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
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from interp_jax import attacks, data, losses, models
from interp_jax.analysis.settings import decisive_layer
from interp_jax.errors import UserError
from interp_jax.measures import consistency, detection, influence


def default_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.layer = ""                  # "" = the decisive layer (where the consistent loss acts)
  c.ablation = "zero"           # zero, or mean (over cfg.reference_images training images)
  c.reference_images = 512
  c.profile_split = "train"     # the neurons' profiles come from this split, never the scored one
  c.profile_images = 4000       # chosen by content
  c.num_images = 1000           # test images scored for detection, chosen by content
  c.top = 10                    # influential neurons per input for the detection score
  c.attacks = ("fgsm", "pgd", "adaptive")  # at the analysis eps; PGD with the analysis
                                # steps; adaptive: that PGD against CE - weight x D (the
                                # detector's score), an attacker who knows the detector
  c.adaptive_weight = 10.0      # declared before any result: D in [0, 1] against CE
  c.images = ()                 # test-split indices to explain beside the chosen examples
  c.neurons_shown = 5
  c.tiles = 6
  c.batch_size = 100
  c.neuron_chunk = 0            # 0 = every neuron in one vmap
  c.seed = 0
  return c


@dataclasses.dataclass
class Example:
  """One explained image: its top neurons, each with its top images (for the page)."""
  kind: str
  title: str
  image: np.ndarray           # [H, W, 3] float32
  neurons: list               # dicts of results["examples"][i]["neurons"]
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


def check(cfg, run, analysis_results) -> tuple[str, dict]:
  """Validates cfg before compute: (layer, analysis settings)."""
  check_values(cfg)
  layers = analysis_results["layers"]
  layer = cfg.layer or decisive_layer(run.config, run.model.layer_names)
  if layer not in layers:
    raise UserError(f"layer {layer!r} was not analysed; the analysis has {', '.join(layers)} "
                    "(rerun analyze with that layer)")
  n_test = run.meta.splits.get("test", 0)
  bad = [i for i in cfg.images if not 0 <= int(i) < n_test]
  if bad:
    raise UserError(f"images {bad} are not indices of the {n_test} test images")
  if cfg.profile_split not in run.meta.splits and cfg.profile_split != "validation":
    raise UserError(f"the data set has no split {cfg.profile_split!r}")
  return layer, analysis_results["settings"]


def profiles(model, variables, source, layer, k, batch_size, num_classes, progress=True):
  """[N, K] class profiles of the layer's neurons from their top-k images of `source`."""
  step = jax.jit(lambda t, v, x, ids, ok: consistency.topk_update(
      t, consistency.neuron_activations(
          models.apply_with_features(model, v, x, (layer,))[1][layer]), ids, ok))
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

  def __call__(self, variables, x):
    return self.model.apply(variables["model"], x)

  def attack_loss(self, variables, x, y):
    logits = self.model.apply(variables["model"], x)
    pred = jnp.argmax(jax.lax.stop_gradient(logits), -1)
    pd = influence.prediction_difference(self.model, variables["model"], x, self.layer,
                                         classes=pred, fill=variables["fill"])
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
  aware = DetectorAware(model, layer, top, weight)

  def pd_of(v, x, fill):
    return influence.prediction_difference(model, v, x, layer, fill=fill, neuron_chunk=chunk)

  def step(v, x, y, seeds, key, fill, profile):
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(seeds)
    sets = {"clean": x}
    for a, spec in specs.items():
      if a == "adaptive":
        sets[a] = spec(aware, {"model": v, "profile": profile, "fill": fill}, x, y, keys)
      else:
        sets[a] = spec(model.apply, v, x, y, keys)
    out = {}
    for name, images in sets.items():
      pred = jnp.argmax(model.apply(v, images), -1)
      pd = pd_of(v, images, fill)
      ids, values = influence.top_neurons(pd, top)
      out[name] = {"pred": pred, "score": detection.disagreement(pd, pred, profile, top),
                   "top_ids": ids, "top_pd": values}
    return out

  return jax.jit(step)


def explain(run, cfg, analysis_results, dissection_results=None, progress=True):
  """Returns (results dict, [Example]); see the module docstring."""
  layer, settings = check(cfg, run, analysis_results)
  key = jax.random.key(cfg.seed)
  k = int(settings["k"])
  num_classes = run.meta.num_classes
  profile_src = data.sample_by_content(data.open_split(run.config.dataset, cfg.profile_split),
                                       cfg.profile_images)
  profile, profiled = profiles(run.model, run.variables, profile_src, layer, k, cfg.batch_size,
                               num_classes, progress)
  fill = None
  if cfg.ablation == "mean":
    ref = data.sample_by_content(data.open_split(run.config.dataset, "train"),
                                 cfg.reference_images)
    images = data.to_model_input(ref.get(np.arange(len(ref))))["image"]
    fill = influence.reference_mean(run.model, run.variables, images, layer)
  fill = jnp.zeros((profile.shape[0],)) if fill is None else fill
  specs = _specs(settings, cfg.attacks)
  step = _step(run.model, layer, specs, min(cfg.top, profile.shape[0]), cfg.neuron_chunk or None,
               float(cfg.adaptive_weight))
  test = data.open_split(run.config.dataset, "test")
  chosen = data.sample_by_content(test, cfg.num_images)
  rows = {name: {f: [] for f in ("pred", "score", "top_ids", "top_pd")}
          for name in ("clean", *specs)}
  labels, index = [], []
  for b in tqdm(data.eval_batches(chosen, cfg.batch_size), total=data.num_eval_batches(
      chosen, cfg.batch_size), desc="explain: detection", unit="batch", disable=not progress):
    seeds = data.content_hashes(np.round(b["image"] * 255).astype(np.uint8))
    out = jax.device_get(step(run.variables, b["image"], b["label"], seeds, key, fill, profile))
    ok = b["mask"]
    for name, o in out.items():
      for f in rows[name]:
        rows[name][f].append(np.asarray(o[f])[ok])
    labels.append(b["label"][ok])
    index.append(b["index"][ok])
  rows = {n: {f: np.concatenate(v) for f, v in r.items()} for n, r in rows.items()}
  labels, index = np.concatenate(labels), np.concatenate(index)
  test_ids = (chosen.indices if isinstance(chosen, data.Subset) else np.arange(len(chosen)))
  results = {
      "layer": layer, "ablation": cfg.ablation, "settings": cfg.to_dict(),
      "profile": {"split": cfg.profile_split, "num_images": len(profile_src), "k": k,
                  "num_included": int(profiled.sum()), "num_neurons": int(len(profiled))},
      "accuracy": {n: float(np.mean(r["pred"] == labels)) for n, r in rows.items()},
      "detection": _detection(rows, labels, specs),
  }
  examples, results["examples"] = _examples(run, cfg, layer, analysis_results, dissection_results,
                                            rows, labels, index, test_ids, chosen, step, key,
                                            fill, profile, specs)
  return results, examples


def _detection(rows, labels, specs) -> dict:
  clean = rows["clean"]
  correct = clean["pred"] == labels
  out = {"score": "class disagreement of the influential neurons (measures/detection.py)",
         "clean_mean": float(clean["score"].mean()), "attacks": {}}
  for name in specs:
    adv = rows[name]
    fooled = correct & (adv["pred"] != labels)
    fpr, tpr, _ = detection.roc_curve(clean["score"], adv["score"])
    entry = {"auc": detection.roc_auc(clean["score"], adv["score"]),
             "num_clean": int(len(clean["score"])), "num_adversarial": int(len(adv["score"])),
             "success_rate": float(fooled.sum() / max(correct.sum(), 1)),
             "adversarial_mean": float(adv["score"].mean()),
             "roc": {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}}
    if correct.any() and fooled.any():
      entry["auc_successful"] = detection.roc_auc(clean["score"][correct], adv["score"][fooled])
      entry["num_successful"] = int(fooled.sum())
    else:
      entry["auc_successful"], entry["num_successful"] = None, int(fooled.sum())
    out["attacks"][name] = entry
  return out


def _neuron_rows(ids, pds, pred, layer_info, dis_layer, profile, class_names):
  real = layer_info["sets"]["real"]
  out = []
  for n, pd in zip(ids, pds):
    n = int(n)
    concept = None
    if dis_layer is not None and dis_layer["sets"]["real"]["detector"][n]:
      concept = dis_layer["sets"]["real"]["concept"][n]
    out.append({"neuron": n, "pd": round(float(pd), 6),
                "consistency": real["per_neuron"][n], "concept": concept,
                "profile_agreement": round(float(profile[n, pred]), 4),
                "profile_class": class_names[int(np.argmax(profile[n]))]})
  return out


def _examples(run, cfg, layer, analysis, dissection, rows, labels, index, test_ids, chosen,
              step, key, fill, profile, specs):
  names = run.meta.class_names
  clean, pgd = rows["clean"], rows.get("pgd")
  picks = []
  if pgd is not None:
    fooled = np.flatnonzero((clean["pred"] == labels) & (pgd["pred"] != labels))
    if len(fooled):
      picks += [("clean", fooled[0], "clean"), ("adversarial (PGD)", fooled[0], "pgd")]
  wrong = np.flatnonzero(clean["pred"] != labels)
  if len(wrong):
    picks.append(("misclassified", wrong[0], "clean"))
  extra = _explain_indices(run, cfg, step, key, fill, profile, [int(i) for i in cfg.images])
  layer_info = analysis["layers"][layer]
  dis_layer = (dissection or {}).get("layers", {}).get(layer)
  eval_src = _analysis_source(run, analysis)
  top = layer_info["sets"]["real"]["topk_indices"]
  out, records = [], []
  for kind, row, which in picks:
    raw = chosen.get(np.array([index[row]]))["image"]
    image = raw[0].astype(np.float32) / 255
    if which != "clean":  # made again: each image's attack is seeded by its pixels
      keys = jax.random.fold_in(key, data.content_hashes(raw)[0])[None]
      image = np.asarray(specs[which](run.model.apply, run.variables, image[None],
                                      labels[row:row + 1], keys))[0]
    r = rows[which]
    records.append(_record(kind, int(test_ids[index[row]]), int(labels[row]), int(r["pred"][row]),
                           r["top_ids"][row][:cfg.neurons_shown],
                           r["top_pd"][row][:cfg.neurons_shown], float(r["score"][row])))
    out.append((kind, image))
  for i, (image, rec) in zip(cfg.images, extra):
    out.append((rec["kind"], image))
    records.append(rec | {"test_index": int(i)})
  examples = []
  for (kind, image), rec in zip(out, records):
    rec["neurons"] = _neuron_rows(rec.pop("_ids")[:cfg.neurons_shown],
                                  rec.pop("_pd")[:cfg.neurons_shown], rec["predicted"],
                                  layer_info, dis_layer, profile, names)
    tiles, captions = _tiles(eval_src, top, [n["neuron"] for n in rec["neurons"]], cfg.tiles,
                             names)
    title = (f"{rec['kind']}: test image {rec['test_index']}, true {names[rec['label']]}, "
             f"predicted {names[rec['predicted']]} (D = {rec['score']:.2f})")
    examples.append(Example(kind, title, image, rec["neurons"], tiles, captions))
  return examples, records


def _record(kind, test_index, label, pred, ids, pds, score):
  return {"kind": kind, "test_index": test_index, "label": label, "predicted": pred,
          "score": score, "_ids": np.asarray(ids), "_pd": np.asarray(pds)}


def _explain_indices(run, cfg, step, key, fill, profile, indices):
  """The test images `indices` the user asked for: (image, record) of each, clean."""
  if not indices:
    return []
  test = data.open_split(run.config.dataset, "test")
  b = data.to_model_input(test.get(np.asarray(indices)))
  seeds = data.content_hashes(test.get(np.asarray(indices))["image"])
  out = jax.device_get(step(run.variables, b["image"], b["label"], seeds, key, fill, profile))
  c = out["clean"]
  return [(b["image"][j], _record("requested", i, int(b["label"][j]), int(c["pred"][j]),
                                  c["top_ids"][j], c["top_pd"][j], float(c["score"][j])))
          for j, i in enumerate(indices)]


def _analysis_source(run, analysis):
  s = analysis["settings"]
  src = data.open_split(run.config.dataset, s.get("split", "test"))
  return data.sample_by_content(src, s["num_images"]) if s.get("num_images") else src


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
