"""The analysis: attack the test split, stream top-k per neuron, score consistency.

    run = restore.load_trained(workdir)
    results, images = analyze(run, default_config())   # results: see RESULTS_SCHEMA

One jitted function per batch makes the adversarial images, runs the model
on real and adversarial images, and merges every chosen layer's activations
into three running top-k tallies (real, adversarial, and their union,
where adversarial image i has id N + i). Memory stays O(neurons x k). The
scores, companion measures and chance baselines are computed at the end.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from interp_jax import attacks, consistency, data, models, sharding, similarity
from interp_jax.errors import UserError

_KEEP_IMAGES_BYTES = 256 << 20
SETS = ("real", "adversarial", "mixed", "adversarial_by_prediction")
HIST_BINS = 20


def default_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.attack = "pgd"              # any name of attacks.REGISTRY
  c.eps = -1.0                  # < 0: the run's training eps (config.adv.eps)
  c.step_size = 0.0             # 0 = eps / 4
  c.steps = 10
  c.norm = "linf"
  c.k = 50                      # top images per neuron
  c.layers = ()                 # () = every named layer but the logits
  c.activation = "max"          # a conv channel's activation on an image: spatial max or mean
  c.similarity = "auto"         # auto (hierarchy when the data ship a tree), identity,
  c.similarity_tree = ""        # hierarchy, wordnet; similarity_tree: a JSON class tree
  c.num_images = 0              # the first N test images (0 = all)
  c.batch_size = 256            # split over the devices
  c.seed = 0
  c.chance_draws = 200          # random k-subsets for the chance baseline
  c.report_neurons = 4          # neurons per group in the report's image grids
  c.report_tiles = 8            # top images shown per neuron and set
  return c


@dataclasses.dataclass
class Images:
  """What the report needs to draw tiles: the split and a way to redo attacks."""
  source: object
  adversarial: callable        # ids [m] -> float32 images [m, H, W, C]
  labels: np.ndarray
  predicted_adv: np.ndarray
  class_names: tuple


def test_source(run, cfg):
  """The analysed images: the run's test split, or its first cfg.num_images."""
  source = data.open_split(run.config.dataset, "test")
  return data.FirstN(source, cfg.num_images) if cfg.num_images else source


def check(cfg, run) -> tuple[tuple[str, ...], str, np.ndarray]:
  """Validates cfg against the run before compute; returns (layers, source, matrix)."""
  return check_for(cfg, run.config, run.meta, run.model.layer_names)


def check_for(cfg, config, meta, layer_names) -> tuple[tuple[str, ...], str, np.ndarray]:
  """check() from what a run is made of (its config, data, layers), so a command
  that trains first can validate the analysis before any compute."""
  attacks.by_name(cfg.attack)
  if cfg.norm not in attacks.NORMS:
    raise UserError(f"unknown norm {cfg.norm!r}; use one of {attacks.NORMS}")
  if _eps(cfg, config) > (1 if cfg.norm == "linf" else 1e3):
    raise UserError(f"eps must be in [0, 1], got {cfg.eps}")
  if cfg.k < 1 or cfg.batch_size < 1 or cfg.steps < 1:
    raise UserError("k, batch_size and steps must be positive integers")
  images = meta.splits["test"] if not cfg.num_images else min(cfg.num_images,
                                                               meta.splits["test"])
  if cfg.k > images:
    raise UserError(f"k = {cfg.k} exceeds the {images} images analysed")
  if cfg.activation not in ("max", "mean"):
    raise UserError(f"unknown activation {cfg.activation!r}; use max or mean")
  layers = tuple(cfg.layers) or tuple(n for n in layer_names if n != "logits")
  unknown = [l for l in layers if l not in layer_names]
  if unknown:
    raise UserError(f"the model has no layer {unknown}; its layers are {', '.join(layer_names)}")
  source = cfg.similarity
  if source == "auto":
    source = "hierarchy" if (meta.class_tree or cfg.similarity_tree) else "identity"
  matrix = similarity.for_dataset(source, meta, cfg.similarity_tree)
  return layers, source, matrix


def resolved_eps(cfg, run) -> float:
  return _eps(cfg, run.config)


def _eps(cfg, config) -> float:
  """The analysis eps: cfg.eps, or the run's training eps when cfg.eps < 0."""
  return float(config.adv.eps) if cfg.eps < 0 else float(cfg.eps)


def _attack_options(cfg, eps) -> dict:
  options = {"eps": eps, "norm": cfg.norm}
  if cfg.attack != "fgsm":
    options.update(steps=cfg.steps, step_size=cfg.step_size or None)
  return options


def analyze(run, cfg, progress: bool = True):
  """Returns (results dict, Images); see RESULTS_SCHEMA in report/schema.py."""
  layers, similarity_source, sim = check(cfg, run)
  source = test_source(run, cfg)
  n = len(source)
  model, variables = run.model, run.variables
  attack = attacks.by_name(cfg.attack)
  eps = resolved_eps(cfg, run)
  options = _attack_options(cfg, eps)
  key = jax.random.key(cfg.seed)

  def make_adversarial(x, y, batch_key):
    return attack(model.apply, variables, x, y, batch_key, **options)

  def batch_step(tallies, cos_sums, x, y, ids, valid, batch_key):
    x_adv = make_adversarial(x, y, batch_key)
    logits_r, feats_r = models.apply_with_features(model, variables, x, layers)
    logits_a, feats_a = models.apply_with_features(model, variables, x_adv, layers)
    new_tallies, new_cos = {}, {}
    for l in layers:
      act_r = consistency.neuron_activations(feats_r[l], cfg.activation)
      act_a = consistency.neuron_activations(feats_a[l], cfg.activation)
      real, adv, mixed = tallies[l]
      mixed = consistency.topk_update(mixed, act_r, ids, valid)
      new_tallies[l] = (consistency.topk_update(real, act_r, ids, valid),
                        consistency.topk_update(adv, act_a, ids, valid),
                        consistency.topk_update(mixed, act_a, ids + n, valid))
      cos = consistency.cosine_similarity(feats_r[l], feats_a[l])
      new_cos[l] = cos_sums[l] + jnp.sum(jnp.where(valid, cos, 0.0))
    return (new_tallies, new_cos, jnp.argmax(logits_r, -1), jnp.argmax(logits_a, -1), x_adv)

  shapes = jax.eval_shape(lambda x: models.apply_with_features(model, variables, x, layers)[1],
                          jnp.zeros((1, *run.meta.image_shape), jnp.float32))
  tallies = {l: tuple(consistency.topk_init(shapes[l].shape[-1], cfg.k) for _ in range(3))
             for l in layers}
  cos_sums = {l: jnp.float32(0.0) for l in layers}
  step = jax.jit(batch_step)
  mesh = sharding.data_mesh()  # the batch is split over the devices (CPU cores too)
  if cfg.batch_size % mesh.size:
    raise UserError(f"batch_size {cfg.batch_size} is not divisible by the {mesh.size} devices")
  pred_r, pred_a, labels = np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int32)
  # Small sets keep their adversarial images (as uint8, for the report's tiles);
  # large ones have the tiles' batches attacked again at report time.
  keep_images = n * int(np.prod(run.meta.image_shape)) <= _KEEP_IMAGES_BYTES
  stored = np.zeros((n, *run.meta.image_shape), np.uint8) if keep_images else None
  batches = data.eval_batches(source, cfg.batch_size)
  for i, batch in enumerate(tqdm(batches, total=data.num_eval_batches(source, cfg.batch_size),
                                 desc="analyze", unit="batch", disable=not progress)):
    sharded = sharding.put_batch(mesh, {k: batch[k] for k in ("image", "label", "index",
                                                              "mask")})
    tallies, cos_sums, pr, pa, x_adv = step(tallies, cos_sums, sharded["image"],
                                            sharded["label"], sharded["index"],
                                            sharded["mask"], jax.random.fold_in(key, i))
    keep = batch["index"][batch["mask"]]
    if stored is not None:
      stored[keep] = np.round(np.asarray(x_adv)[batch["mask"]] * 255).astype(np.uint8)
    pred_r[keep], pred_a[keep] = np.asarray(pr)[batch["mask"]], np.asarray(pa)[batch["mask"]]
    labels[keep] = batch["label"][batch["mask"]]

  results = _score(tallies, cos_sums, labels, pred_a, sim, cfg, n, key)
  results["accuracy"] = {"clean": float(np.mean(pred_r == labels)),
                         "adversarial": float(np.mean(pred_a == labels))}
  results["settings"] = {
      **cfg.to_dict(), "eps": eps, "layers": list(layers), "similarity": similarity_source,
      "num_images": n, "similarity_matrix": np.asarray(sim).round(6).tolist(),
      "requested": json.loads(json.dumps(cfg.to_dict()))}
  results["run"] = {"workdir": run.workdir, "checkpoint_step": run.step,
                    "model": run.config.model.name, "dataset": run.config.dataset.name,
                    "class_names": list(run.meta.class_names)}
  adv_step = jax.jit(make_adversarial)

  def adversarial(ids):
    """The adversarial images `ids`: kept ones, or the attack redone on their batches
    (same keys, same padding, so the same images)."""
    ids = np.asarray(ids)
    if stored is not None:
      return stored[ids].astype(np.float32) / 255.0
    out = np.zeros((len(ids), *run.meta.image_shape), np.float32)
    for b in np.unique(ids // cfg.batch_size):
      idx = np.arange(b * cfg.batch_size, (b + 1) * cfg.batch_size)
      batch = data.to_model_input(source.get(np.minimum(idx, n - 1)))
      x_adv = np.asarray(adv_step(batch["image"], batch["label"], jax.random.fold_in(key, b)))
      rows = ids // cfg.batch_size == b
      out[rows] = x_adv[ids[rows] - b * cfg.batch_size]
    return out

  return results, Images(source, adversarial, labels, pred_a, run.meta.class_names)


def _summary(scores: np.ndarray, alive: np.ndarray, indices: np.ndarray) -> dict:
  live = scores[alive]
  counts, edges = np.histogram(live, bins=HIST_BINS, range=(0.0, 1.0))
  return {"mean": float(live.mean()) if live.size else None,
          "median": float(np.median(live)) if live.size else None,
          "histogram": {"edges": edges.round(6).tolist(), "counts": counts.tolist()},
          "per_neuron": scores.round(6).tolist(),
          "topk_indices": indices.tolist()}


def _score(tallies, cos_sums, labels, pred_adv, sim, cfg, n, key) -> dict:
  labels_j, sim_j = jnp.asarray(labels), jnp.asarray(sim)
  chance_mean, chance_std = consistency.chance_consistency(labels_j, cfg.k, sim_j, key,
                                                           cfg.chance_draws)
  out = {"layers": {}}
  for l, (real, adv, mixed) in tallies.items():
    real_idx, adv_idx, mixed_idx = (np.asarray(t.indices) for t in (real, adv, mixed))
    # A neuron that never fires on real images has an arbitrary top-k: it is
    # reported but left out of the layer's statistics.
    alive = np.asarray(real.values)[:, 0] > 0
    scored = {
        "real": (labels[real_idx], real_idx),
        "adversarial": (labels[adv_idx], adv_idx),
        "mixed": (labels[mixed_idx % n], mixed_idx),
        "adversarial_by_prediction": (pred_adv[adv_idx], adv_idx),
    }
    sets = {}
    for name, (set_labels, idx) in scored.items():
      scores = np.asarray(consistency.neuron_consistency(jnp.asarray(set_labels), sim_j))
      sets[name] = _summary(scores, alive, idx)
    overlap = np.asarray(consistency.topk_overlap(jnp.asarray(real_idx), jnp.asarray(adv_idx)))
    out["layers"][l] = {
        "num_neurons": int(real_idx.shape[0]),
        "num_alive": int(alive.sum()),
        "alive": alive.tolist(),
        "sets": sets,
        "chance": {"mean": float(chance_mean), "std": float(chance_std)},
        "topk_overlap": {"mean": float(overlap[alive].mean()) if alive.any() else None,
                         "per_neuron": overlap.round(6).tolist()},
        "feature_cosine": float(cos_sums[l]) / n,
    }
  return out
