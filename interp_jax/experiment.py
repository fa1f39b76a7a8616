"""The reproduction as a library: three variants trained, analysed and summarised.

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

VARIANTS = ("standard", "adv", "adv_consistent")

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
  from interp_jax.checkpointing import Checkpoints
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


def decisive_layer(config, layer_names) -> str:
  """Where to read the findings: the consistent loss's first non-logit layer."""
  for layer in config.consistency.layers:
    if layer != "logits":
      return layer
  return [n for n in layer_names if n != "logits"][-1]


def _run_one(config, workdir, analysis_cfg, progress=True) -> dict:
  """Trains (or resumes) one run, analyses it and measures FGSM accuracy."""
  from interp_jax import analysis, report, trainer
  from interp_jax.robustness import AttackSpec, evaluate_robustness
  from interp_jax.restore import load_trained
  trainer.train_and_evaluate(config, workdir)
  run = load_trained(workdir)
  out_dir = os.path.join(workdir, "analysis")
  results_path = os.path.join(out_dir, "results.json")
  requested = json.loads(json.dumps(analysis_cfg.to_dict()))
  results = None
  if os.path.exists(results_path):  # reuse an analysis made with the same settings
    with open(results_path) as f:
      saved = json.load(f)
    if (saved["settings"].get("requested") == requested
        and saved["run"]["checkpoint_step"] == run.step):
      results = saved
  if results is None:
    results, images = analysis.analyze(run, analysis_cfg, progress=progress)
    report.save_analysis(results, images, out_dir, analysis_cfg.report_tiles,
                         analysis_cfg.report_neurons)
  source = analysis.test_source(run, analysis_cfg)
  eps = analysis.resolved_eps(analysis_cfg, run)
  fgsm = evaluate_robustness(
      run, [AttackSpec("fgsm", eps, analysis_cfg.norm, 1, eps)],
      source, analysis_cfg.batch_size, jax.random.key(analysis_cfg.seed), progress=progress)
  with open(os.path.join(workdir, "robustness.json"), "w") as f:
    json.dump(fgsm, f, indent=2)
  return {"results": results, "fgsm": fgsm["attacks"]["fgsm"]["accuracy"]}


def _subdir(workdir: str, variant: str, seed_index: int, seeds: int) -> str:
  return os.path.join(workdir, variant if seeds == 1 else f"seed{seed_index}/{variant}")


def _model_summary(per_seed: list[dict], workdirs) -> dict:
  """Means (and spreads) over seeds of one variant's numbers."""
  def stat(values):
    return float(np.mean(values)), float(np.std(values))

  first = per_seed[0]["results"]
  out = {"workdirs": workdirs, "layers": {}}
  for key, get in (("clean", lambda r: r["results"]["accuracy"]["clean"]),
                   ("pgd", lambda r: r["results"]["accuracy"]["adversarial"]),
                   ("fgsm", lambda r: r["fgsm"])):
    out[key], out[f"{key}_std"] = stat([get(r) for r in per_seed])
  for layer, info in first["layers"].items():
    layers = [r["results"]["layers"][layer] for r in per_seed]
    sets = {s: stat([l["sets"][s]["mean"] for l in layers]) for s in info["sets"]}
    out["layers"][layer] = {
        "sets": {s: m for s, (m, _) in sets.items()},
        "sets_std": {s: sd for s, (_, sd) in sets.items()},
        "chance_mean": stat([l["chance"]["mean"] for l in layers])[0],
        "chance_std": stat([l["chance"]["std"] for l in layers])[0],
        "topk_overlap": stat([l["topk_overlap"]["mean"] for l in layers])[0],
        "feature_cosine": stat([l["feature_cosine"] for l in layers])[0],
    }
  return out


def reproduce(base_config, workdir: str, analysis_cfg, criteria, seeds: int = 1,
              progress: bool = True) -> dict:
  """Trains, analyses and summarises the three variants; returns summary.json's content."""
  from interp_jax import analysis, data, findings, models
  from interp_jax.default_config import select_variant
  from interp_jax.errors import UserError
  from interp_jax.report import reproduction
  from interp_jax.trainer import check_config
  if seeds < 1:
    raise UserError(f"--seeds must be a positive integer, got {seeds}")
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
  layer = decisive_layer(base_config, layer_names)
  runs = {}
  for (variant, s), c in configs.items():
    sub = _subdir(workdir, variant, s, seeds)
    start = time.perf_counter()
    runs[(variant, s)] = {**_run_one(c, sub, analysis_cfg, progress), "workdir": sub}
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
  reproduction.write(summary, {v: runs[(v, 0)]["results"] for v in VARIANTS},
                     os.path.join(workdir, "report"))
  return summary


