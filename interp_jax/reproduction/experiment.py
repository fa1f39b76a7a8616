"""The reproduction as a library: the variants trained over seeds, analysed, summarised.

    summary = reproduce(config, "runs/reproduce")   # every setting from config's sections

With `selection`, the consistent loss is first chosen on the validation split
(reproduction/selection.py, in DIR/selection, at config.seed), and the
reported runs use the next seeds (config.seed + 1, ...): a candidate that won
on validation images would carry that luck into its test numbers. Variants:
standard, adv, adv_consistent (the chosen loss) and adv_symmetric (the
paper's symmetric form at the chosen lambda and layers).
Every model is also scored on one shared adversarial set, made against the
standard model of the same seed, so the models are compared on identical
inputs as well as on their own white-box attacks. Only the test split is
analysed here. Runs already finished in the workdir are reused, and so are
analyses made with the same settings. summary.json: report/reproduction.py.

Under protocol 2 (criteria.protocol, findings.py) the analysis takes the
declared eps sweep, test share and successful set (protocol.analysis_for), the
selection trains at least two seeds per candidate, and standard and
adv_consistent are also evaluated by the declared robust-gain evaluation
(robust.py, cached in each run's DIR/robust_eval.json).
"""

import copy
import dataclasses
import json
import os
import time

import jax

from interp_jax.default_config import VARIANTS, section, select_variant
from interp_jax.records import as_saved
from interp_jax.reproduction import protocol
from interp_jax.reproduction.over_seeds import RunOutcome, summarise_numbers
from interp_jax.reproduction.reuse import check_reusable
from interp_jax.reproduction.summary import (DetectionSummary, InspectedLayer, Inspection,
                                             SeedShare, Selection, Summary)

# What the reproduction can train: the config's variants and the paper's symmetric
# consistent loss at adv_consistent's lambda and layers.
REPRODUCED = VARIANTS + ("adv_symmetric",)


def _run_one(config, workdir, analysis_cfg, shared_workdir, shared_images=None,
             progress=True, criteria=None) -> tuple:
  """Trains (or resumes) one run, analyses it and measures FGSM accuracy; given
  `criteria` (protocol 2), also runs the declared robust-gain evaluation.

  shared_workdir: the run the shared adversarial set is made against (this
  run's own workdir: its own adversarial set); shared_images: that set, when
  it was kept from the shared run's analysis, so it is not made again.
  Returns (RunOutcome, the loaded run, this run's own adversarial images
  when they were made here and are small enough to keep, else None).
  """
  from interp_jax import analysis, attacks
  from interp_jax.training import trainer
  from interp_jax.analysis.robustness import evaluate_robustness
  from interp_jax.reproduction.stages import analyze_run
  from interp_jax.training.restore import load_trained
  trainer.train_and_evaluate(config, workdir)
  run = load_trained(workdir)
  shared_from = run if shared_workdir == workdir else load_trained(shared_workdir)
  results, _, adversarial = analyze_run(run, analysis_cfg, shared_from, shared_images,
                                        progress, reuse=True)
  source = analysis.evaluation_source(run, analysis_cfg)
  eps = analysis.resolved_eps(analysis_cfg, run.config)
  fgsm = evaluate_robustness(
      run, [attacks.AttackSpec("fgsm", eps, analysis_cfg.norm)],
      source, analysis_cfg.batch_size, jax.random.key(analysis_cfg.seed), progress=progress)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "robustness.json"), "w") as f:
      json.dump(fgsm.to_json(), f, indent=2)
  outcome = RunOutcome(results, fgsm.attacks["fgsm"].accuracy, workdir)
  if criteria is not None:
    from interp_jax.reproduction import robust
    evaluated = robust.evaluate(run, analysis_cfg, criteria, progress)
    outcome = dataclasses.replace(outcome, robust=evaluated.accuracy, robust_flagged=tuple(
        c for c, v in evaluated.detail.get("checks", {}).items() if v["flagged"]))
  return outcome, run, adversarial


def _inspect(run, results, adversarial, analysis_cfg, dissection_cfg, tracing_cfg,
             progress: bool) -> Inspection:
  """Dissection and tracing of one run (its pages, and the figures the summary quotes).

  The dissection attacks with the analysis's settings, so both see the same
  adversarial images, and takes the analysis's images when it analysed the
  whole probe split.
  """
  from interp_jax.reproduction import stages
  from interp_jax.default_config import ATTACK_FIELDS
  dissection_cfg = dissection_cfg.copy_and_resolve_references()
  for field in ATTACK_FIELDS + ("seed",):
    dissection_cfg[field] = analysis_cfg[field]
  same_images = (analysis_cfg.split == dissection_cfg.split and not analysis_cfg.num_images
                 and not analysis_cfg.get("test_share") and not dissection_cfg.broden)
  dis, pages = None, {}
  if dissection_cfg.broden or run.meta.concepts:  # a probe set with concept masks
    dis, pages["dissection"] = stages.dissect_run(
        run, dissection_cfg, adversarial if same_images else None, progress,
        reuse=True)
  ex, pages["explain"] = stages.explain_run(run, tracing_cfg, results, dis, progress,
                                            reuse=True)
  return Inspection(
      dissection={l: InspectedLayer(info.sets["real"].detectors_per_category,
                                    info.sets["adversarial"].detectors_per_category,
                                    len(info.changed))
                  for l, info in (dis.layers if dis else {}).items()},
      iou_threshold=dis.settings["iou_threshold"] if dis else None,
      detection=DetectionSummary.of(ex),
      pages=pages)


def _subdir(workdir: str, variant: str, seed: int, flat: bool) -> str:
  """DIR/VARIANT (`flat`: one seed, no selection), else DIR/seedS/VARIANT for seed S."""
  return os.path.join(workdir, variant) if flat else os.path.join(workdir, f"seed{seed}", variant)


def variant_config(base_config, variant: str, seed: int):
  """The config of one reproduced run: a variant of base_config at a seed."""
  if variant not in REPRODUCED:
    from interp_jax.errors import UserError
    raise UserError(f"unknown variant {variant!r}; choose from {', '.join(REPRODUCED)}")
  c = select_variant(copy.deepcopy(base_config),
                     "adv_consistent" if variant == "adv_symmetric" else variant)
  c.unlock()
  c.seed = seed
  if variant == "adv_symmetric":
    c.consistency.anchor_clean = False
  return c


def _select(base_config, workdir, analysis_cfg, progress, version=1):
  """Runs (or reuses) the selection in DIR/selection; returns (the config with the
  chosen loss, or base_config when none met the rule; the record for the summary)."""
  from interp_jax.reproduction import selection
  sel_dir = os.path.join(workdir, "selection")
  out = selection.select(base_config, sel_dir, analysis_cfg, progress=progress,
                         protocol=version)
  record = Selection(sel_dir, out.choice, out.rule, out.layer,
                     os.path.join(sel_dir, "selection.html"), len(out.candidates),
                     base_config.seed, out.seeds)
  if out.choice is None:
    return base_config, record
  return selection.with_loss(base_config, out.choice), record


def _shares(runs, variants, seeds, first_seed) -> tuple[SeedShare, ...]:
  """Per seed: the analysed images (count and fingerprint), the same for every model."""
  out = []
  for s in range(seeds):
    # (None: an analysis saved before the digest was recorded)
    got = {v: runs[(v, s)].results.settings.get("images_digest") for v in variants}
    if len(set(got.values()) - {None}) > 1:  # this seed's differences would not be paired
      raise RuntimeError(f"seed {first_seed + s}: the models were analysed on other images "
                         f"({got})")
    settings = runs[("standard", s)].results.settings
    out.append(SeedShare(first_seed + s, settings["num_images"],
                         next((d for d in got.values() if d), None)))
  return tuple(out)


def _summarise(config, analysis_cfg, criteria, runs, variants, seeds, layer,
               first_seed) -> Summary:
  """The summary of the runs' results: means and intervals, differences, statements."""
  from interp_jax.reproduction import findings, robust
  first = runs[("standard", 0)].results
  models, diffs = summarise_numbers(
      {v: [runs[(v, s)] for s in range(seeds)] for v in variants}, layer, criteria)
  evaluation = None
  if criteria.get("protocol", 1) == 2:
    evaluation = dataclasses.replace(robust.describe(criteria),
                                     variants=("standard", "adv_consistent"))
  summary = Summary(
      layer=layer, eps=first.settings["eps"],
      seeds=tuple(first_seed + s for s in range(seeds)), variants=tuple(variants),
      protocol=protocol.record(criteria), environment=protocol.environment(),
      criteria=as_saved(criteria.to_dict()), analysis=as_saved(analysis_cfg.to_dict()),
      config=json.loads(config.to_json()), models=models, differences=diffs,
      test_shares=_shares(runs, variants, seeds, first_seed), robust_evaluation=evaluation)
  return dataclasses.replace(summary, statements=tuple(findings.evaluate(summary, criteria)))


def _check(base_config, analysis_cfg, criteria, seeds, variants, selection=False):
  """Every setting a user can get wrong, before any compute; returns the layer names."""
  from interp_jax import analysis, data, models
  from interp_jax.errors import UserError
  from interp_jax.training.trainer import check_config
  if seeds < 1:
    raise UserError(f"config.reproduction.seeds must be a positive integer, got {seeds}")
  if analysis_cfg.source_workdir:
    raise UserError("the reproduction makes its shared adversarial set against its own "
                    "standard model; leave config.analysis.source_workdir unset")
  missing = [v for v in VARIANTS if v not in variants]
  unknown = [v for v in variants if v not in REPRODUCED]
  if missing or unknown:
    raise UserError(f"config.reproduction.variants must hold {', '.join(VARIANTS)} (the "
                    f"findings compare them) and may add adv_symmetric; got "
                    f"{', '.join(variants)}")
  if analysis_cfg.split != "test":
    raise UserError("the reproduction reports the test split; leave config.analysis.split "
                    "unset (the selection reads validation by itself)")
  protocol.check_criteria(criteria)
  layer_names = models.create(base_config.model.name, 1, **base_config.model.options).layer_names
  plan = analysis.check_for(analysis_cfg, base_config, data.describe(base_config.dataset),
                            layer_names)
  layer = analysis.decisive_layer(base_config, layer_names)
  if layer not in plan.layers:
    raise UserError(f"the findings are read at {layer}, where the consistent loss acts; "
                    f"config.analysis.layers must include it (got {', '.join(plan.layers)})")
  for v in variants:  # every run's config, before any compute (workdirs: below)
    check_config(variant_config(base_config, v, base_config.seed))
  if selection:
    from interp_jax.reproduction.selection import selection_seeds
    selection_seeds(base_config, criteria.get("protocol", 1))
  return layer_names


def reproduce(base_config, workdir: str, analysis_cfg=None, criteria=None, seeds=None,
              selection=None, variants=None, progress: bool = True, inspect=None,
              dissection_cfg=None, tracing_cfg=None) -> Summary:
  """Trains, analyses and summarises the variants; returns the Summary (summary.json).

  Every setting comes from base_config's sections (analysis, criteria, dissection,
  tracing, and reproduction: seeds, selection, variants, inspect); an argument
  given here replaces its section. inspect: also dissect and explain each model of
  the first reported seed; their pages are linked from the report and
  summary.inspection quotes their figures.
  """
  from interp_jax.analysis import dissection, tracing
  plan = section(base_config, "reproduction")
  analysis_cfg = analysis_cfg or section(base_config, "analysis")
  criteria = criteria or section(base_config, "criteria")
  dissection_cfg = dissection_cfg or section(base_config, "dissection")
  tracing_cfg = tracing_cfg or section(base_config, "tracing")
  seeds = plan.seeds if seeds is None else seeds
  selection = plan.selection if selection is None else selection
  variants = plan.variants if variants is None else variants
  inspect = plan.inspect if inspect is None else inspect
  # The config records what ran (summary.config, each run's checkpoint).
  base_config = copy.deepcopy(base_config)
  base_config.unlock()
  base_config.analysis, base_config.criteria = analysis_cfg, criteria
  base_config.dissection, base_config.tracing = dissection_cfg, tracing_cfg
  base_config.reproduction = plan.copy_and_resolve_references()
  base_config.reproduction.update(seeds=int(seeds), selection=bool(selection),
                                  variants=tuple(variants), inspect=bool(inspect))
  if inspect:
    dissection.check_values(dissection_cfg)
    tracing.check_values(tracing_cfg)
  from interp_jax import analysis
  from interp_jax.report import reproduction
  from interp_jax.training.trainer import check_config
  variants = tuple(variants)
  protocol.check_criteria(criteria)
  version = criteria.get("protocol", 1)
  analysis_cfg = protocol.analysis_for(analysis_cfg, criteria)
  layer_names = _check(base_config, analysis_cfg, criteria, seeds, variants, selection)
  notes, sel_record, config, first_seed = [], None, base_config, base_config.seed
  if selection:
    config, sel_record = _select(base_config, workdir, analysis_cfg, progress, version)
    # The selected run won on validation images; its test numbers would carry that
    # luck. The reported seeds are other seeds than the ones the selection trained.
    first_seed = base_config.seed + len(sel_record.seeds)
  if "adv_symmetric" in variants and not config.consistency.anchor_clean:
    variants = tuple(v for v in variants if v != "adv_symmetric")
    notes.append("adv_consistent already uses the paper's symmetric form, so adv_symmetric "
                 "was not trained again")
  flat = seeds == 1 and not selection
  dirs = {(v, s): _subdir(workdir, v, first_seed + s, flat)
          for v in variants for s in range(seeds)}
  configs = {(v, s): variant_config(config, v, first_seed + s)
             for v in variants for s in range(seeds)}
  for key, c in configs.items():  # every workdir before any (further) compute
    check_config(c)
    check_reusable(c, dirs[key])
  # Where the findings are read: where the selection scored its candidates.
  layer = sel_record.layer if sel_record else analysis.decisive_layer(config, layer_names)
  runs, shared_images, inspected = {}, {}, {}
  for (variant, s), c in configs.items():
    sub = dirs[(variant, s)]
    start = time.perf_counter()
    # The shared adversarial set: made once, against the standard model of the same
    # seed (its own adversarial images), and scored on every model of that seed.
    decides_gain = version == 2 and variant in ("standard", "adv_consistent")
    runs[(variant, s)], run, adversarial = _run_one(
        c, sub, analysis_cfg, dirs[("standard", s)], shared_images.get(s), progress,
        criteria if decides_gain else None)
    if variant == "standard":
      shared_images[s] = adversarial
    if inspect and s == 0:
      inspected[variant] = _inspect(run, runs[(variant, s)].results, adversarial,
                                    analysis_cfg, dissection_cfg, tracing_cfg, progress)
    if progress:
      print(f"{variant} (seed {c.seed}) done in {time.perf_counter() - start:.0f} s")
  summary = dataclasses.replace(
      _summarise(config, analysis_cfg, criteria, runs, variants, seeds, layer, first_seed),
      selection=sel_record, notes=tuple(notes), inspection=inspected)
  if jax.process_index() == 0:
    reproduction.write(summary, {v: runs[(v, 0)].results for v in variants},
                       os.path.join(workdir, "report"))
  return summary
