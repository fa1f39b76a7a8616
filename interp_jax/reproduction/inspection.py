"""Dissect and explain a trained run, and write their pages: what the `dissect` and
`explain` commands and the reproduction share.

    results, page = dissect_run(run, dissection.default_config())   # run: load_trained(DIR)
    results, page = explain_run(run, tracing.default_config(), analysis_results)

Pages go to DIR/dissection and DIR/explain. Saved results are reused when they
were made with the same settings at the same checkpoint.
"""

import json
import os

import jax
import numpy as np

from interp_jax.analysis import dissection, tracing
from interp_jax.data import probes
from interp_jax.errors import UserError
from interp_jax.report import dissection_page, tracing_page


def _saved(path: str, requested: dict, step: int):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    saved = json.load(f)
  same = (saved.get("requested") == requested
          and saved.get("run", {}).get("checkpoint_step") == step)
  return saved if same else None


def _title(run, verb):
  return f"{verb} {run.config.model.name} ({os.path.basename(os.path.normpath(run.workdir))})"


def dissect_run(run, cfg, adversarial=None, progress=True, reuse=False) -> tuple[dict, str]:
  """Dissects run's model on its probe set; returns (results, page path).

  adversarial: the adversarial images of cfg.split made by cfg's attack (an
  analysis of that whole split with the same attack settings), in split order;
  they are used for the run's own masks only, and made here otherwise.
  """
  out = os.path.join(run.workdir, "dissection")
  page = os.path.join(out, "index.html")
  requested = json.loads(json.dumps(cfg.to_dict()))
  saved = _saved(os.path.join(out, "results.json"), requested, run.step) if reuse else None
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
  results["run"] = {"workdir": run.workdir, "model": run.config.model.name,
                    "checkpoint_step": run.step}
  results["requested"] = requested
  if jax.process_index() == 0:
    page = dissection_page.write(results, ious, tiles, out, _title(run, "of"))
  return results, page


def explain_run(run, cfg, analysis_results, dissection_results=None, progress=True,
                reuse=False) -> tuple[dict, str]:
  """Traces run's predictions and scores the detector; returns (results, page path)."""
  out = os.path.join(run.workdir, "explain")
  page = os.path.join(out, "index.html")
  # The attack budget, k and images come from the analysis: its settings are part of
  # what was asked, and so is the dissection whose concepts the page names.
  requested = json.loads(json.dumps({
      **cfg.to_dict(), "analysis": analysis_results["settings"].get("requested"),
      "dissection": (dissection_results or {}).get("requested")}))
  saved = _saved(os.path.join(out, "results.json"), requested, run.step) if reuse else None
  if saved is not None:
    return saved, page
  results, examples = tracing.explain(run, cfg, analysis_results, dissection_results, progress)
  results["run"] = {"workdir": run.workdir, "model": run.config.model.name,
                    "checkpoint_step": run.step}
  results["requested"] = requested
  if jax.process_index() == 0:
    page = tracing_page.write(results, examples, out, run.meta.class_names,
                              _title(run, "by"))
  return results, page
