"""The analysis of one trained model, as the algorithm reads: check, extract, score, tiles.

    results, grids = analyze(load_trained("runs/adv"), default_config(),
                             shared_from=load_trained("runs/standard"))

results is an AnalysisResults (results.py; its JSON follows report/schema.py);
grids are the images the report draws. `shared_from` is the model the shared
adversarial set is made against (the run itself: its own adversarial set, not
made twice).
"""

import hashlib
import os

import jax
import numpy as np

from interp_jax import data, sharding
from interp_jax.analysis import extraction as extract_lib
from interp_jax.analysis import results as R
from interp_jax.analysis.scoring import score
from interp_jax.analysis.settings import check_for, resolved_eps, share_size
from interp_jax.analysis.tiles import neuron_grids
from interp_jax.errors import UserError
from interp_jax.records import as_saved


def share_of(source, share: float, seed: int, chunk: int = 4096):
  """A run's test share: the share_size(len(source), share) images whose content
  digests keyed by `seed` (data.content_digests) are the smallest, as a data.Subset.

  Every run of one seed gets the same images (the models of a seed stay paired);
  another seed draws another share; the draw follows the pixels, so the same
  images stored in another order give the same share. Equal digests are ordered by
  label, then position (as data.holdout).
  """
  n = len(source)
  size = share_size(n, share)
  digests, labels = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)]
  for s in range(0, n, chunk):
    batch = source.get(np.arange(s, min(s + chunk, n)))
    digests.append(data.content_digests(batch["image"], int(seed)))
    labels.append(np.asarray(batch["label"], np.int64))
  order = np.lexsort((np.concatenate(labels), np.concatenate(digests)))
  return data.Subset(source, np.sort(order[:size]))


def images_digest(source) -> str:
  """A fingerprint of which images of the split a source holds (its positions there):
  two analyses with equal digests read the same images."""
  ids = np.asarray(getattr(source, "indices", np.arange(len(source))), np.int64)
  return hashlib.sha256(ids.tobytes()).hexdigest()[:16]


def analysed_source(dataset, split: str, num_images: int = 0, test_share: float = 0.0,
                    seed: int = 0):
  """The images an analysis of these settings reads: the split, cfg.num_images of it
  chosen by content (data.sample_by_content), or the run's test share (share_of)."""
  source = data.open_split(dataset, split)
  if test_share:
    return share_of(source, test_share, seed)
  return data.sample_by_content(source, num_images) if num_images else source


def evaluation_source(run, cfg):
  """The analysed images of a run: its cfg.split (test by default), cfg.num_images of
  them chosen by content, or its own test share keyed by its seed (cfg.test_share)."""
  return analysed_source(run.config.dataset, cfg.split, cfg.num_images,
                         cfg.get("test_share", 0.0), run.config.seed)


def autoattack_set(run, source, split: str = "test") -> np.ndarray:
  """[N, H, W, C] each analysed image's AutoAttack worst case (in `source`'s order), read
  from DIR/adversarial/autoattack.npz (adversarial_validation/ for the validation split),
  which `attack --attacks=autoattack --save_images` writes. Robust images hold APGD-CE's
  point of highest loss. Raises UserError, before anything is computed, when the file is
  missing or lacks an analysed image."""
  folder = "adversarial" if split == "test" else f"adversarial_{split}"
  path = os.path.join(run.workdir, folder, "autoattack.npz")
  command = (f"python -m interp_jax.attack --workdir={run.workdir} --attacks=autoattack "
             f"--save_images --split={split} --num_images=N")
  if not os.path.exists(path):
    raise UserError(f"analysis.adversarial=autoattack reads {path}, which does not exist: "
                    f"make it with `{command}`")
  saved = np.load(path)
  where = {int(i): row for row, i in enumerate(saved["index"])}
  wanted = np.asarray(getattr(source, "indices", np.arange(len(source))))
  missing = [int(i) for i in wanted if int(i) not in where]
  if missing:
    raise UserError(f"{path} holds AutoAttack's images of {len(where)} {split} images, not "
                    f"of {len(missing)} of the {len(wanted)} analysed (split index "
                    f"{missing[0]}, ...): attack as many as the analysis reads (`{command}` "
                    "with the analysis's num_images)")
  rows = np.array([where[int(i)] for i in wanted])
  labels = data.to_model_input(source.get(np.arange(len(source))))["label"]
  if not np.array_equal(saved["label"][rows], labels):
    raise UserError(f"{path} was made on other images than the analysed ones (its labels "
                    "differ): attack again with --save_images")
  return saved["images"][rows].astype(np.float32)


def _check_shared(run, other) -> None:
  if (tuple(other.meta.class_names) != tuple(run.meta.class_names)
      or tuple(other.meta.image_shape) != tuple(run.meta.image_shape)):
    raise UserError(f"the shared adversarial set's model ({other.workdir}) was trained on other "
                    f"classes or image sizes than {run.workdir}; use a run of the same data")


def analyze(run, cfg, *, shared_from=None, source=None, progress: bool = True):
  """Returns (AnalysisResults, [NeuronGrid]); see the module docstring.

  source: the images to analyse (`len`, `get`), by default the run's test split.
  """
  results, grids, _ = analyze_with_images(run, cfg, shared_from=shared_from, source=source,
                                          progress=progress)
  return results, grids


def analyze_with_images(run, cfg, *, shared_from=None, shared_images=None, source=None,
                        progress: bool = True):
  """analyze, which also returns the model's adversarial images (float32, or None for a
  split too large to keep) and takes the shared set as images already made against
  `shared_from` (`shared_images`: a reproduction makes them once for every model)."""
  plan = check_for(cfg, run.config, run.meta, run.model.layer_names)
  if shared_from is not None:
    _check_shared(run, shared_from)
  source = evaluation_source(run, cfg) if source is None else source
  attacked = autoattack_set(run, source, cfg.split) if cfg.adversarial == "autoattack" else None
  key = jax.random.key(cfg.seed)
  other = shared_from is not None and shared_from is not run
  passes = 1 + len(_extra_passes(cfg, plan))
  ex = extract_lib.extract(
      run.model, run.variables, source, plan.layers, plan.attack, k=cfg.k, key=key,
      activation=cfg.activation, batch_size=cfg.batch_size, progress=progress,
      desc=f"analysis pass 1/{passes}: {len(plan.layers)} layers, eps {plan.attack.eps:.4g}",
      shared=(shared_from.model.apply, shared_from.variables) if other else None,
      shared_images=shared_images if other else None, successful=cfg.successful,
      attacked_images=attacked)
  if shared_from is run:  # the model's own adversarial set is the shared one
    ex.predicted["shared"] = ex.predicted["adversarial"]
    for tallies in ex.tallies.values():
      tallies["shared"] = tallies["adversarial"]
  scored = score(ex, plan, k=cfg.k, key=key, draws=cfg.chance_draws)
  settings = as_saved({  # as results.json holds it: lists, not tuples
      **cfg.to_dict(), "eps": plan.attack.eps, "layers": list(plan.layers),
      "similarity": plan.similarity, "num_images": len(source),
      "similarity_matrix": np.asarray(plan.matrices[plan.similarity]).round(6).tolist(),
      "shared_from": shared_from.workdir if shared_from is not None else None,
      "images_digest": images_digest(source),
      "requested": cfg.to_dict()})
  results = R.AnalysisResults(
      run=R.RunInfo(workdir=run.workdir, checkpoint_step=run.step, model=run.config.model.name,
                    dataset=run.config.dataset.name, class_names=tuple(run.meta.class_names)),
      settings=settings, accuracy=scored.accuracy, attack=scored.attack, layers=scored.layers,
      eps_curve=(eps_curve(run, cfg, plan, source, key, scored, progress)
                 if cfg.eps_curve else None))

  def adversarial_of(ids):
    if attacked is not None:
      return attacked[ids]
    if ex.adversarial is not None:
      return ex.adversarial[ids]
    return extract_lib.adversarial_images(run.model, run.variables, source, plan.attack, ids,
                                          key=key, batch_size=cfg.batch_size)

  grids = neuron_grids(results, source, ex.labels, ex.predicted["adversarial"], adversarial_of,
                       run.meta.class_names, cfg.report_tiles, cfg.report_neurons)
  return results, grids, ex.adversarial


def _extra_passes(cfg, plan) -> list:
  """The eps curve's factors that stream the split again: all but 0 and 1 when the
  curve layer is among the analysed ones (those two are read from the main pass)."""
  analysed = plan.curve_layer in plan.layers
  return [f for f in cfg.eps_curve if not (analysed and f in (0, 1))]


def eps_curve(run, cfg, plan, source, key, scored: R.Scored, progress=True) -> R.EpsCurve:
  """Consistency on adversarial images at the curve layer, per multiple of eps.

  eps x 0 is the real set and eps x 1 the analysis itself (both read from
  `scored`, the main pass, when the layer was analysed); other multiples stream the
  split again at that one layer. Each point's `mean` is over the neurons included
  at that eps; `paired_mean` over the neurons included at every eps, so the
  curve's shape is not a change of which neurons count. `turned_wrong`: of the
  images classified correctly, the share the attack at that eps makes wrong (0 at
  eps x 0), the success rate a comparison at matched attack strength reads.
  """
  layer, points, step, sets = plan.curve_layer, [], None, []
  extra = _extra_passes(cfg, plan)
  for factor in cfg.eps_curve:
    if factor not in extra:
      adv = scored.layers[layer].sets["real" if factor == 0 else "adversarial"]
      accuracy = scored.accuracy.clean if factor == 0 else scored.accuracy.adversarial
      turned = 0.0 if factor == 0 else scored.attack.turned_wrong
    else:
      step = step or extract_lib.batch_step(run.model, (layer,), plan.attack, cfg.activation,
                                            len(source), sharding.data_mesh(),
                                            successful=cfg.successful)
      ex = extract_lib.extract(run.model, run.variables, source, (layer,), plan.attack,
                               k=cfg.k, key=key, activation=cfg.activation,
                               batch_size=cfg.batch_size, eps_scale=factor,
                               keep_images=False, step=step, successful=cfg.successful,
                               progress=progress,
                               desc=f"analysis pass {extra.index(factor) + 2}/"
                                    f"{len(extra) + 1}: eps curve, {factor:g} x eps at {layer}")
      point = score(ex, plan, k=cfg.k, key=key, draws=cfg.chance_draws, sets=("adversarial",))
      adv = point.layers[layer].sets["adversarial"]
      accuracy, turned = point.accuracy.adversarial, point.attack.turned_wrong
    sets.append(adv)
    points.append(dict(factor=float(factor), eps=plan.attack.eps * factor, mean=adv.mean,
                       purity=adv.purity.mean, num_included=adv.num_included,
                       accuracy=accuracy, turned_wrong=turned))
  every = np.logical_and.reduce([np.asarray(s.included) for s in sets])
  return R.EpsCurve(layer=layer, num_paired=int(every.sum()), points=tuple(
      R.CurvePoint(**point, paired_mean=(float(np.mean(np.asarray(s.per_neuron, float)[every]))
                                         if every.any() else None))
      for point, s in zip(points, sets)))


__all__ = ["analysed_source", "analyze", "eps_curve", "evaluation_source", "resolved_eps",
           "share_of"]
