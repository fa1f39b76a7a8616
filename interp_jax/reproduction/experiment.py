"""The reproduction as a library: three variants trained, analysed and summarised.

Every model is also scored on one shared adversarial set, made against the
standard model of the same seed, so the models are compared on identical
inputs as well as on their own white-box attacks.

    summary = reproduce(config, "runs/demo", analysis.default_config(),
                        findings.default_criteria(), seeds=1)

Runs already finished in the workdir are reused, and so are analyses made
with the same settings. See reproduce.py for summary.json's fields.
"""

import copy
import json
import os
import time

import jax
import numpy as np

from interp_jax.default_config import VARIANTS

# Config fields that change nothing a run learns: a run saved under other
# values of these is still the run the config asks for.
_BOOKKEEPING = ("log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                "keep_checkpoints", "eval_batch_size", "adv.eval_images")
# ... and the fields a variant's objective does not read (prefixes).
_UNUSED = {"standard": ("adv.", "loss.adv_weight", "consistency."),
           "adv": ("consistency.",), "adv_consistent": ()}


def _flat(tree: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def check_reusable(config, workdir: str) -> None:
  """Raises UserError when workdir holds a run trained under other settings.

  Reusing it would report numbers of a model the config does not describe,
  and retraining would destroy it, so the user chooses.
  """
  from interp_jax.training.checkpointing import Checkpoints
  from interp_jax.errors import UserError
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return
  ckpt = Checkpoints(directory, async_save=False)
  try:
    saved = ckpt.saved_config()
  finally:
    ckpt.close()
  if saved is None:
    return
  have, want = _flat(saved), _flat(json.loads(config.to_json()))
  ignored = _BOOKKEEPING + _UNUSED.get(config.variant, ())
  differ = [k for k in sorted(have.keys() | want.keys())
            if not k.startswith(ignored) and have.get(k) != want.get(k)]
  if differ:
    shown = "; ".join(f"{k} = {have.get(k)!r} there, {want.get(k)!r} asked" for k in differ[:3])
    more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
    raise UserError(f"{workdir} holds a run trained with other settings ({shown}{more}); "
                    "use another --workdir, or delete that run to train it again")


def _load_analysis(out_dir: str, requested: dict, step: int, shared_from) -> dict | None:
  """The saved analysis of out_dir when it was made with these settings, at this
  checkpoint, on the shared set of this checkpoint of shared_from; else None."""
  path = os.path.join(out_dir, "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    saved = json.load(f)
  settings = saved.get("settings", {})
  if (settings.get("requested") == requested and saved["run"]["checkpoint_step"] == step
      and settings.get("shared_from") == shared_from.workdir
      and settings.get("shared_from_step") == shared_from.step and "attack" in saved):
    return saved
  return None


def _run_one(config, workdir, analysis_cfg, shared_workdir, shared_images=None,
             progress=True) -> dict:
  """Trains (or resumes) one run, analyses it and measures FGSM accuracy.

  shared_workdir: the run the shared adversarial set is made against (this
  run's own workdir: its own adversarial set); shared_images: that set, when
  it was kept from the shared run's analysis, so it is not made again.
  The result holds this run's own adversarial images ("adversarial") when
  they were made here and are small enough to keep.
  """
  from interp_jax import analysis, attacks, report
  from interp_jax.training import trainer
  from interp_jax.analysis.robustness import evaluate_robustness
  from interp_jax.training.restore import load_trained
  trainer.train_and_evaluate(config, workdir)
  run = load_trained(workdir)
  out_dir = os.path.join(workdir, "analysis")
  requested = json.loads(json.dumps(analysis_cfg.to_dict()))
  shared_from = run if shared_workdir == workdir else load_trained(shared_workdir)
  results = _load_analysis(out_dir, requested, run.step, shared_from)
  adversarial = None
  if results is None:
    results, grids, adversarial = analysis.analyze_with_images(
        run, analysis_cfg, shared_from=shared_from, shared_images=shared_images,
        progress=progress)
    results["settings"]["shared_from_step"] = shared_from.step
    if jax.process_index() == 0:  # every process holds the results; one writes them
      report.save_analysis(results, grids, out_dir)
  source = analysis.evaluation_source(run, analysis_cfg)
  eps = analysis.resolved_eps(analysis_cfg, run.config)
  fgsm = evaluate_robustness(
      run, [attacks.AttackSpec("fgsm", eps, analysis_cfg.norm)],
      source, analysis_cfg.batch_size, jax.random.key(analysis_cfg.seed), progress=progress)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "robustness.json"), "w") as f:
      json.dump(fgsm, f, indent=2)
  return {"results": results, "fgsm": fgsm["attacks"]["fgsm"]["accuracy"],
          "adversarial": adversarial}


def _subdir(workdir: str, variant: str, seed_index: int, seeds: int) -> str:
  return os.path.join(workdir, variant if seeds == 1 else f"seed{seed_index}/{variant}")


def _stat(values) -> tuple:
  """Mean and spread over seeds; None where a seed has no value."""
  if any(v is None for v in values):
    return None, None
  return float(np.mean(values)), float(np.std(values))


def _layer_summary(layers: list[dict]) -> dict:
  """Means over seeds of one layer's numbers (each seed's analysis in `layers`)."""
  out = {"num_neurons": layers[0]["num_neurons"]}
  for key, get in (("sets", lambda s: s["mean"]), ("chance", lambda s: s["chance"]["mean"]),
                   ("chance_spread", lambda s: s["chance"]["std"]),
                   ("included", lambda s: s["num_included"]),
                   ("purity", lambda s: s["purity"]["mean"]),
                   ("purity_chance", lambda s: s["purity"]["chance"]["mean"])):
    stats = {name: _stat([get(l["sets"][name]) for l in layers]) for name in layers[0]["sets"]}
    out[key] = {name: m for name, (m, _) in stats.items()}
    if key in ("sets", "purity"):
      out[f"{key}_std"] = {name: sd for name, (_, sd) in stats.items()}
  out["comparisons"] = {
      name: {field: _stat([l["comparisons"][name][field] for l in layers])[0]
             for field in c} for name, c in layers[0]["comparisons"].items()}
  out["topk_overlap"] = _stat([l["topk_overlap"]["mean"] for l in layers])[0]
  out["feature_cosine"] = _stat([l["feature_cosine"] for l in layers])[0]
  return out


def _model_summary(per_seed: list[dict], workdirs) -> dict:
  """Means (and spreads) over seeds of one variant's numbers."""
  results = [r["results"] for r in per_seed]
  out = {"workdirs": workdirs}
  for key, get in (("clean", lambda r: r["results"]["accuracy"]["clean"]),
                   ("pgd", lambda r: r["results"]["accuracy"]["adversarial"]),
                   ("shared", lambda r: r["results"]["accuracy"].get("shared")),
                   ("success_rate", lambda r: r["results"]["attack"]["success_rate"]),
                   ("fgsm", lambda r: r["fgsm"])):
    out[key], out[f"{key}_std"] = _stat([get(r) for r in per_seed])
  out["layers"] = {layer: _layer_summary([r["layers"][layer] for r in results])
                   for layer in results[0]["layers"]}
  if "eps_curve" in results[0]:
    curves = [r["eps_curve"]["points"] for r in results]
    out["eps_curve"] = {"layer": results[0]["eps_curve"]["layer"],
                        "num_paired": _stat([r["eps_curve"]["num_paired"] for r in results])[0],
                        "points": [
        {"factor": p["factor"], "eps": p["eps"],
         **{f: _stat([c[i][f] for c in curves])[0]
            for f in ("mean", "paired_mean", "purity", "num_included", "accuracy")}}
        for i, p in enumerate(curves[0])]}
  return out


def reproduce(base_config, workdir: str, analysis_cfg, criteria, seeds: int = 1,
              progress: bool = True) -> dict:
  """Trains, analyses and summarises the three variants; returns summary.json's content."""
  from interp_jax import analysis, data, models
  from interp_jax.reproduction import findings
  from interp_jax.default_config import select_variant
  from interp_jax.errors import UserError
  from interp_jax.report import reproduction
  from interp_jax.training.trainer import check_config
  if seeds < 1:
    raise UserError(f"--seeds must be a positive integer, got {seeds}")
  if analysis_cfg.source_workdir:
    raise UserError("the reproduction makes its shared adversarial set against its own "
                    "standard model; leave --analysis.source_workdir unset")
  configs = {}
  for variant in VARIANTS:
    for s in range(seeds):
      c = select_variant(copy.deepcopy(base_config), variant)
      c.unlock()
      c.seed = base_config.seed + s
      check_config(c)  # every run's config and workdir, before any compute
      check_reusable(c, _subdir(workdir, variant, s, seeds))
      configs[(variant, s)] = c
  layer_names = models.create(base_config.model.name, 1, **base_config.model.options).layer_names
  analysis.check_for(analysis_cfg, base_config, data.describe(base_config.dataset), layer_names)
  layer = analysis.decisive_layer(base_config, layer_names)
  runs, shared_images = {}, {}
  for (variant, s), c in configs.items():
    sub = _subdir(workdir, variant, s, seeds)
    start = time.perf_counter()
    # The shared adversarial set: made once, against the standard model of the same
    # seed (its own adversarial images), and scored on every model of that seed.
    shared = _subdir(workdir, "standard", s, seeds)
    out = _run_one(c, sub, analysis_cfg, shared, shared_images.get(s), progress)
    if variant == "standard":
      shared_images[s] = out["adversarial"]
    runs[(variant, s)] = {"results": out["results"], "fgsm": out["fgsm"], "workdir": sub}
    if progress:
      print(f"{variant} (seed {c.seed}) done in {time.perf_counter() - start:.0f} s")
  first = runs[("standard", 0)]["results"]
  summary = {"layer": layer, "eps": first["settings"]["eps"], "seeds": [base_config.seed + s for s in range(seeds)],
             "criteria": criteria.to_dict(), "analysis": analysis_cfg.to_dict(),
             "config": json.loads(base_config.to_json()),
             "models": {v: _model_summary([runs[(v, s)] for s in range(seeds)],
                                          [runs[(v, s)]["workdir"] for s in range(seeds)])
                        for v in VARIANTS}}
  summary["statements"] = findings.evaluate(summary, criteria)
  if jax.process_index() == 0:
    reproduction.write(summary, {v: runs[(v, 0)]["results"] for v in VARIANTS},
                       os.path.join(workdir, "report"))
  return summary


