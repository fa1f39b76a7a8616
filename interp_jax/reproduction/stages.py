"""The stages of one trained run, each run (or reused when saved) and its page written:
what the `analyze`, `dissect`, `explain` and `attack` commands and the reproduction share.

    results, page, adversarial = analyze_run(run, cfg)        # run: load_trained(DIR)
    results, page = dissect_run(run, dissection.default_config())
    results, page = explain_run(run, tracing.default_config(), analysis_results)
    results, page = explain_workdir("runs/demo/adv", cfg)     # the commands: from a workdir
    report, path = attack_workdir("runs/demo/adv", ("pgd", "autoattack"), 4 / 255)

Pages go to DIR/analysis, DIR/dissection and DIR/explain; results are the
typed AnalysisResults, DissectionResults and TracingResults (analysis/results.py).
With `reuse`, saved results are returned when they read as their type and were
made with the same settings at the same checkpoint (for the analysis, also on
the same shared set).
"""

import dataclasses
import json
import os
import warnings

import jax
import numpy as np

from interp_jax import analysis, report
from interp_jax.analysis import dissection, tracing
from interp_jax.analysis.results import (AnalysisResults, Checkpoint, DissectionResults,
                                         RobustnessReport, TracingResults)
from interp_jax.data import probes
from interp_jax.errors import UserError
from interp_jax.records import as_saved
from interp_jax.report import dissection_page, tracing_page
from interp_jax.reproduction.reuse import same_request
from interp_jax.training.restore import load_trained


def _saved(cls, path: str, requested: dict, step: int):
  """The results saved at path when they were asked with `requested` at this checkpoint."""
  saved = cls.saved(path)
  if saved is None or saved.run is None:
    return None
  return saved if saved.requested == requested and saved.run.checkpoint_step == step else None


def _saved_analysis(path: str, requested: dict, step: int,
                    shared_from) -> AnalysisResults | None:
  """The analysis saved at path when it was made with these settings, at this
  checkpoint, on the shared set of this checkpoint of shared_from (or on none)."""
  saved = AnalysisResults.saved(path)
  if saved is None:
    return None
  settings = saved.settings
  shared = (None, None) if shared_from is None else (shared_from.workdir, shared_from.step)
  if (same_request(settings.get("requested"), requested)
      and saved.run.checkpoint_step == step
      and (settings.get("shared_from"), settings.get("shared_from_step")) == shared):
    return saved
  return None


def analyze_run(run, cfg, shared_from=None, shared_images=None, progress=True,
                reuse=False) -> tuple[AnalysisResults, str, object]:
  """Analyses run's model (analysis.analyze) and writes DIR/analysis; returns (results,
  page path, its own adversarial images when made here and small enough to keep, else
  None).

  shared_from: a run whose adversarial images every model is scored on (this run: its
  own); shared_images: that set, when kept from the shared run's analysis. The page
  shows DIR/robustness.json (the attack command's) when there is one.
  """
  out = os.path.join(run.workdir, "analysis")
  page = os.path.join(out, "index.html")
  requested = as_saved(cfg.to_dict())
  saved = (_saved_analysis(os.path.join(out, "results.json"), requested, run.step,
                           shared_from) if reuse else None)
  if saved is not None:
    return saved, page, None
  results, grids, adversarial = analysis.analyze_with_images(
      run, cfg, shared_from=shared_from, shared_images=shared_images, progress=progress)
  results = dataclasses.replace(results, settings={
      **results.settings, "shared_from_step": None if shared_from is None else shared_from.step})
  if jax.process_index() == 0:  # every process holds the results; one writes them
    # (None when absent, or written under another schema: the page then leaves it out)
    robustness = RobustnessReport.saved(os.path.join(run.workdir, "robustness.json"))
    page = report.save_analysis(results, grids, out, robustness)
  return results, page, adversarial


def analyze_workdir(workdir: str, cfg, data_dir=None,
                    progress=True) -> tuple[AnalysisResults, str]:
  """The analyze command: workdir's run analysed with cfg (cfg.source_workdir: the run
  whose adversarial images every model is scored on); (results, page path)."""
  run = load_trained(workdir, data_dir)
  shared_from = None
  if cfg.source_workdir:
    same = os.path.realpath(cfg.source_workdir) == os.path.realpath(workdir)
    shared_from = run if same else load_trained(cfg.source_workdir, data_dir)
  results, page, _ = analyze_run(run, cfg, shared_from, progress=progress)
  return results, page


def dissect_workdir(workdir: str, cfg, data_dir=None) -> tuple[DissectionResults, str]:
  """The dissect command: workdir's run dissected with cfg; (results, page path)."""
  return dissect_run(load_trained(workdir, data_dir), cfg)


def explain_workdir(workdir: str, cfg, data_dir=None) -> tuple[TracingResults, str]:
  """The explain command: workdir's run explained with cfg, from its saved analysis and
  (when of this checkpoint) its dissection; (results, page path)."""
  path = os.path.join(workdir, "analysis", "results.json")
  if not os.path.exists(path):
    raise UserError(f"{path} does not exist; run python -m interp_jax.analyze "
                    f"--workdir={workdir} first")
  run = load_trained(workdir, data_dir)
  dis_path = os.path.join(workdir, "dissection", "results.json")
  dissection_results = DissectionResults.saved(dis_path)
  if dissection_results is None and os.path.exists(dis_path):
    warnings.warn(f"{dis_path} does not follow the dissection's schema, so the neurons are "
                  f"shown without concepts; rerun python -m interp_jax.dissect "
                  f"--workdir={workdir} for them")
  if dissection_results and (dissection_results.run is None
                             or dissection_results.run.checkpoint_step != run.step):
    dissection_results = None  # of an older checkpoint: its concepts describe other units
  try:
    analysis_results = AnalysisResults.load(path)
  except ValueError as e:
    raise UserError(f"{path} does not follow the analysis results' schema ({e}); run "
                    f"python -m interp_jax.analyze --workdir={workdir} again") from None
  return explain_run(run, cfg, analysis_results, dissection_results)


def _checkpoint(run) -> Checkpoint:
  return Checkpoint(workdir=run.workdir, model=run.config.model.name, checkpoint_step=run.step)


def _title(run, verb):
  return f"{verb} {run.config.model.name} ({os.path.basename(os.path.normpath(run.workdir))})"


def dissect_run(run, cfg, adversarial=None, progress=True,
                reuse=False) -> tuple[DissectionResults, str]:
  """Dissects run's model on its probe set; returns (results, page path).

  adversarial: the adversarial images of cfg.split made by cfg's attack (an
  analysis of that whole split with the same attack settings), in split order;
  they are used for the run's own masks only, and made here otherwise.
  """
  out = os.path.join(run.workdir, "dissection")
  page = os.path.join(out, "index.html")
  requested = as_saved(cfg.to_dict())
  saved = (_saved(DissectionResults, os.path.join(out, "results.json"), requested, run.step)
           if reuse else None)
  if saved is not None:
    return saved, page
  layers, spec = dissection.check(cfg, run)
  probe = probes.open_probe(run.config.dataset, cfg.split, cfg.broden, cfg.broden_split or None)
  shape = tuple(probe.source.get(np.array([0]))["image"].shape[1:])
  if shape != tuple(run.meta.image_shape):
    raise UserError(f"the probe images are {shape}, the model takes {tuple(run.meta.image_shape)}")
  if adversarial is not None and (cfg.broden or len(adversarial) != len(probe.source)):
    adversarial = None
  results, ious, tiles = dissection.dissect(
      run.model, run.variables, probe, layers, attack=spec, key=jax.random.key(cfg.seed),
      adversarial=adversarial, batch_size=cfg.batch_size, bins=cfg.bins, quantile=cfg.quantile,
      iou_threshold=cfg.iou_threshold, tiles=cfg.tiles, units_shown=cfg.units_shown,
      progress=progress)
  results = dataclasses.replace(results, run=_checkpoint(run), requested=requested)
  if jax.process_index() == 0:
    page = dissection_page.write(results, ious, tiles, out, _title(run, "of"))
  return results, page


def explain_run(run, cfg, analysis_results, dissection_results=None, progress=True,
                reuse=False) -> tuple[TracingResults, str]:
  """Traces run's predictions and scores the detector; returns (results, page path)."""
  out = os.path.join(run.workdir, "explain")
  page = os.path.join(out, "index.html")
  # The attack budget, k and images come from the analysis: its settings are part of
  # what was asked, and so is the dissection whose concepts the page names.
  requested = as_saved({
      **cfg.to_dict(), "analysis": analysis_results.settings.get("requested"),
      "dissection": dissection_results.requested if dissection_results else None})
  saved = (_saved(TracingResults, os.path.join(out, "results.json"), requested, run.step)
           if reuse else None)
  if saved is not None:
    return saved, page
  results, examples = tracing.explain(run, cfg, analysis_results, dissection_results, progress)
  results = dataclasses.replace(results, run=_checkpoint(run), requested=requested)
  if jax.process_index() == 0:
    page = tracing_page.write(results, examples, out, run.meta.class_names,
                              _title(run, "by"))
  return results, page


def attack_workdir(workdir: str, names=("fgsm", "pgd"), eps: float = 8 / 255, *,
                   norm: str = "linf", steps: int = 10, step_size: float | None = None,
                   split: str = "test", num_images: int = 0, batch_size: int = 256,
                   seed: int = 0, save_images: bool = False, data_dir=None,
                   version: str = "standard", stages=(), transfer_from=None,
                   progress: bool = True) -> tuple[dict, str]:
  """The attack command: workdir's run attacked on `split` with each of `names` (an
  attack of attacks.REGISTRY, or "autoattack": `version`, or `stages` in order), at
  `eps` (step size eps / 4 unless given); (a RobustnessReport, path of the JSON written).

  The report goes to DIR/robustness.json (robustness_validation.json for the
  validation split; schema: report/robustness.py); with save_images, each attack's
  images to DIR/adversarial/ (adversarial_validation/). Every bad value is refused
  before any attack runs. `transfer_from`: another run's workdir, whose PGD-10 images
  feed AutoAttack's transfer check.
  """
  from interp_jax import attacks, data
  from interp_jax.analysis.robustness import evaluate_autoattack, evaluate_robustness
  if batch_size < 1:
    raise UserError(f"batch_size must be a positive integer, got {batch_size}")
  if split not in ("test", "validation"):
    raise UserError(f"split must be test or validation, got {split!r}")
  auto = "autoattack" in names
  step_size = eps / 4 if step_size is None else step_size
  specs = [attacks.AttackSpec(n, eps, norm, steps, step_size) for n in names
           if n != "autoattack"]
  if auto or stages:
    attacks.autoattack_plan(version, list(stages) or None)  # names checked now
  if auto and version == "rand" and not stages:
    raise UserError("version rand evaluates models with a random forward pass (it "
                    "averages 20 draws a step); a trained run's model is deterministic: "
                    "use version standard")
  run = load_trained(workdir, data_dir)
  other = load_trained(transfer_from, data_dir) if transfer_from else None
  if other is not None and (other.meta.image_shape, other.meta.num_classes) != (
      run.meta.image_shape, run.meta.num_classes):
    raise UserError(f"{transfer_from}'s model takes {other.meta.image_shape} images of "
                    f"{other.meta.num_classes} classes, this one {run.meta.image_shape} of "
                    f"{run.meta.num_classes}: it cannot attack this model's images")
  if other is not None and not auto:
    raise UserError("the transfer model feeds AutoAttack's transfer check: add autoattack "
                    "to the attacks")
  specs = [spec.check(run.meta.image_shape) for spec in specs]
  attacks.AttackSpec("pgd", eps, norm).check(run.meta.image_shape)
  source = data.open_split(run.config.dataset, split)
  if num_images:
    source = data.sample_by_content(source, num_images)
  suffix = "" if split == "test" else f"_{split}"
  save_dir = os.path.join(workdir, f"adversarial{suffix}") if save_images else None
  key = jax.random.key(seed)
  report = dataclasses.replace(
      evaluate_robustness(run, specs, source, batch_size, key, save_dir, progress),
      split=split)
  if auto:
    transfer = (other.model.apply, other.variables, transfer_from) if other else None
    auto = evaluate_autoattack(run, source, eps, norm, version, list(stages) or None,
                               batch_size, key, save_dir, transfer, progress)
    # Without another attack no pass counted the clean accuracy; AutoAttack's did.
    clean = report.clean_accuracy if specs else auto.accuracy_after["clean"]
    report = dataclasses.replace(report, autoattack=auto, clean_accuracy=clean)
  path = os.path.join(workdir, f"robustness{suffix}.json")
  if jax.process_index() == 0:  # every process holds the report; one writes it
    with open(path, "w") as f:
      json.dump(report.to_json(), f, indent=2)
  return report, path
