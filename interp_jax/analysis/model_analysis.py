"""The analysis of one trained model, as the algorithm reads: check, extract, score, tiles.

    results, grids = analyze(load_trained("runs/adv"), default_config(),
                             shared_from=load_trained("runs/standard"))

results follows RESULTS_SCHEMA (report/schema.py); grids are the images the
report draws. `shared_from` is the model the shared adversarial set is made
against (the run itself: its own adversarial set, not made twice).
"""

import json

import jax
import numpy as np

from interp_jax import data, sharding
from interp_jax.analysis import extraction as extract_lib
from interp_jax.analysis.scoring import score
from interp_jax.analysis.settings import check_for, resolved_eps
from interp_jax.analysis.tiles import neuron_grids
from interp_jax.errors import UserError


def evaluation_source(run, cfg):
  """The analysed images: the run's cfg.split (test by default), or cfg.num_images of
  them chosen by content (data.sample_by_content), whatever the storage order."""
  source = data.open_split(run.config.dataset, cfg.split)
  return data.sample_by_content(source, cfg.num_images) if cfg.num_images else source


def _check_shared(run, other) -> None:
  if (tuple(other.meta.class_names) != tuple(run.meta.class_names)
      or tuple(other.meta.image_shape) != tuple(run.meta.image_shape)):
    raise UserError(f"the shared adversarial set's model ({other.workdir}) was trained on other "
                    f"classes or image sizes than {run.workdir}; use a run of the same data")


def analyze(run, cfg, *, shared_from=None, source=None, progress: bool = True):
  """Returns (results dict, [NeuronGrid]); see the module docstring.

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
  key = jax.random.key(cfg.seed)
  other = shared_from is not None and shared_from is not run
  ex = extract_lib.extract(
      run.model, run.variables, source, plan.layers, plan.attack, k=cfg.k, key=key,
      activation=cfg.activation, batch_size=cfg.batch_size, progress=progress,
      shared=(shared_from.model.apply, shared_from.variables) if other else None,
      shared_images=shared_images if other else None)
  if shared_from is run:  # the model's own adversarial set is the shared one
    ex.predicted["shared"] = ex.predicted["adversarial"]
    for tallies in ex.tallies.values():
      tallies["shared"] = tallies["adversarial"]
  results = score(ex, plan, k=cfg.k, key=key, draws=cfg.chance_draws)
  results["settings"] = {
      **cfg.to_dict(), "eps": plan.attack.eps, "layers": list(plan.layers),
      "similarity": plan.similarity, "num_images": len(source),
      "similarity_matrix": np.asarray(plan.matrices[plan.similarity]).round(6).tolist(),
      "shared_from": shared_from.workdir if shared_from is not None else None,
      "requested": json.loads(json.dumps(cfg.to_dict()))}
  results["run"] = {"workdir": run.workdir, "checkpoint_step": run.step,
                    "model": run.config.model.name, "dataset": run.config.dataset.name,
                    "class_names": list(run.meta.class_names)}
  if cfg.eps_curve:
    results["eps_curve"] = eps_curve(run, cfg, plan, source, key, results, progress)

  def adversarial_of(ids):
    if ex.adversarial is not None:
      return ex.adversarial[ids]
    return extract_lib.adversarial_images(run.model, run.variables, source, plan.attack, ids,
                                          key=key, batch_size=cfg.batch_size)

  grids = neuron_grids(results, source, ex.labels, ex.predicted["adversarial"], adversarial_of,
                       run.meta.class_names, cfg.report_tiles, cfg.report_neurons)
  return results, grids, ex.adversarial


def eps_curve(run, cfg, plan, source, key, results, progress=True) -> dict:
  """Consistency on adversarial images at the curve layer, per multiple of eps.

  eps x 0 is the real set and eps x 1 the analysis itself (both read from
  `results` when the layer was analysed); other multiples stream the split
  again at that one layer. Each point's `mean` is over the neurons included
  at that eps; `paired_mean` over the neurons included at every eps, so the
  curve's shape is not a change of which neurons count.
  """
  layer, points, step, sets = plan.curve_layer, [], None, []
  for factor in cfg.eps_curve:
    info = results["layers"].get(layer)
    if info is not None and factor in (0, 1):
      adv = info["sets"]["real" if factor == 0 else "adversarial"]
      accuracy = results["accuracy"]["clean" if factor == 0 else "adversarial"]
    else:
      step = step or extract_lib.batch_step(run.model, (layer,), plan.attack, cfg.activation,
                                            len(source), sharding.data_mesh())
      ex = extract_lib.extract(run.model, run.variables, source, (layer,), plan.attack,
                               k=cfg.k, key=key, activation=cfg.activation,
                               batch_size=cfg.batch_size, eps_scale=factor,
                               keep_images=False, step=step, progress=progress)
      scored = score(ex, plan, k=cfg.k, key=key, draws=cfg.chance_draws, sets=("adversarial",))
      adv = scored["layers"][layer]["sets"]["adversarial"]
      accuracy = scored["accuracy"]["adversarial"]
    sets.append(adv)
    points.append({"factor": float(factor), "eps": plan.attack.eps * factor,
                   "mean": adv["mean"], "purity": adv["purity"]["mean"],
                   "num_included": adv["num_included"], "accuracy": accuracy})
  every = np.logical_and.reduce([np.asarray(s["included"]) for s in sets])
  for point, s in zip(points, sets):
    point["paired_mean"] = (float(np.mean(np.asarray(s["per_neuron"], float)[every]))
                            if every.any() else None)
  return {"layer": layer, "num_paired": int(every.sum()), "points": points}


__all__ = ["analyze", "eps_curve", "evaluation_source", "resolved_eps"]
