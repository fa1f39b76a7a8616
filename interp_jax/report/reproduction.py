"""The reproduction's page: DIR/report/index.html, summary.json and figures/.

The models side by side: the selection that chose the consistent loss, the
computed statement of every finding with the paired differences over seeds
that decide it, a table per model (means with their 95% intervals over
seeds), the differences at every layer and on every control set, the
consistency histograms overlaid per layer and the top-image grids of each
model's decisive layer.

summary.json (read it back with reproduction.summary.Summary.load; one record per
object, so a misspelt field fails where it is read):
    {"layer": the decisive layer, "eps": the attack budget, "seeds": [..], "variants": [..],
     "environment": {"python", "packages": {NAME: version}, "backend", "device_kind",
                     "devices", "processes", "cpu", "cpu_features", "cores"}
                    (reproduction/protocol.py: where the numbers were computed),
     "protocol": {"version", "declared_in" (the commit whose criteria declared it; null
                  until filled), "head" (the commit the run ran from), "head_has_changes",
                  "as_declared" (the criteria are the declared ones), "changed": {FIELD:
                  [declared, used]}},
     "criteria": {...}, "analysis": {the analysis settings}, "config": {the training config
     with the chosen loss, variant aside}, "selection": null or {"workdir", "choice",
     "rule", "layer", "page", "num_candidates", "seed", "seeds"}, "notes": [str],
     "test_shares": [{"seed", "num_images", "images_digest" (the same for every model of
                     the seed)}],
     "robust_evaluation" (protocol 2): {"attack", "version", "stages", "steps", "images",
                                        "text", "variants"},
     "models": {VARIANT: {"clean", "fgsm", "pgd", "shared", "success_rate" (each with "_std",
                          the sample sd over seeds, and "_ci", its 95% t-interval [low, high]
                          or null for one seed),
                          "layers": {LAYER: {"num_neurons",
                                             "sets": {SET: mean}, "sets_std", "sets_ci",
                                             "chance": {SET: mean}, "chance_spread": {SET: sd
                                             of random k-subsets}, "included": {SET: neurons},
                                             "purity": {SET: mean}, "purity_std", "purity_ci",
                                             "purity_chance": {SET: mean},
                                             "comparisons": {"real_vs_X": {"num_neurons",
                                                             "real", X}},
                                             "topk_overlap", "feature_cosine"}},
                          "eps_curve": {"layer", "num_paired", "points": [{"factor", "eps", "mean",
                                        "paired_mean", "purity", "num_included", "accuracy",
                                        "turned_wrong"}]},
                          protocol 2: "matched": {"rate", "measure", "per_seed": [MATCHED],
                                                  "mean", "mean_factor"},
                          "robust" (+ "_std", "_ci"): accuracy under the declared
                          evaluation (protocol 2, standard and adv_consistent; else null),
                          and "robust_flagged": AutoAttack's checks against gradient
                          masking that flagged a seed (null where not evaluated),
                          "workdirs": [..]}},
     "differences": {"layer", "confidence",
                     "decisive": {NAME: INTERVAL},
                     "layers": {LAYER: {"adversarial" | "successful" | "shared":
                                        {NAME: INTERVAL}}}},
     "statements": [{"finding", "holds": true | false | null (undecided: fewer seeds than
                     criteria.min_seeds, or a number missing), "verdict", "failed",
                     "undecided" (the checks that could not be decided),
                     "evidence"}],
     "inspection": {VARIANT: {  (the first reported seed's models; {} with reproduction.inspect False)
         "dissection": {LAYER: {"real" | "adversarial": {CATEGORY: detectors}, "changed"}},
         "iou_threshold": a detector's IoU threshold (null without a dissection),
         "detection": {"layer", "attacks": {ATTACK: {"auc", "auc_successful"}}},
         "pages": {"dissection" (when the data have concept masks or dissection.broden
                   is given), "explain"}}}}
SET as in results.json (report/schema.py); means over the neurons included in
each set, then over seeds. INTERVAL = {"mean", "sd", "n", "low", "high",
"confidence", "side" ("above zero", "below zero", "straddles zero" or "one seed"),
"per_seed"} (null where a seed has no included neuron); NAME is
"A_minus_B" (model A's mean consistency on the set minus model B's),
"standard_real_minus_set" ("_adversarial" in "decisive"), "exposure_V" (the
share of V's above-chance real consistency the set removes),
"exposure_B_minus_A", "standard_real_minus_chance", "clean_drop" (standard -
adv_consistent), "robust_gain" (adv_consistent - standard under the analysis
attack; protocol 2: under the declared evaluation, the analysis attack's then
being "robust_gain_analysis"), "successful_A_minus_B" (the decisive layer's
successful set) and, protocol 2, "matched_A_minus_B" (at matched attack
success). MATCHED = {"value", "eps", "factor", "between", "reached",
"max_rate", "derived", "rate"} (reproduction/matched.py). Differences are
taken seed by seed (reproduction/differences.py).
"""

import html
import json
import os
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from interp_jax.report import figures  # noqa: E402
from interp_jax.report.html import write_page  # noqa: E402
from interp_jax.report.reproduction_tables import (  # noqa: E402
    COLOURS, decisive_table, interval_text, layer_differences, model_table, number)

VERDICT_COLOURS = {True: "#2a7", False: "#c33", None: "#b70"}
FULL_COMMAND = ("make reproduce (python -m interp_jax.reproduce --workdir=runs/reproduce "
                "--config=configs/concepts.py)")


def _histograms(layer: str, results: dict, path: str) -> None:
  """Per layer: real and adversarial panels, the three models' AnalysisResults overlaid."""
  fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.0), sharey=True)
  bins = np.linspace(0, 1, 21)
  for ax, which in zip(axes, ("real", "adversarial")):
    for variant, res in results.items():
      info = res.layers[layer].sets[which]
      scores = np.asarray(info.per_neuron, float)[np.asarray(info.included, bool)]
      ax.hist(scores, bins=bins, histtype="step", lw=2, color=COLOURS[variant],
              label=f"{variant} ({scores.mean() if scores.size else float('nan'):.2f}, "
                    f"{scores.size} neurons)")
    chance = next(iter(results.values())).layers[layer].sets[which].chance.mean
    ax.axvline(np.nan if chance is None else chance, color="k", ls="--", lw=1, label="chance")
    ax.set_title(f"{layer}: {which} images", fontsize=10)
    ax.set_xlabel("consistency")
    ax.legend(fontsize=7)
  axes[0].set_ylabel("neurons")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _accuracy(summary, path: str) -> None:
  fig, ax = plt.subplots(figsize=(5.2, 3.0))
  kinds = ("clean", "fgsm", "pgd")
  x = np.arange(len(kinds))
  width = 0.8 / len(summary.models)
  for i, (variant, m) in enumerate(summary.models.items()):
    offset = (i - (len(summary.models) - 1) / 2) * width
    ax.bar(x + offset, [getattr(m, k) for k in kinds], width,
           yerr=[getattr(m, f"{k}_std") for k in kinds], color=COLOURS[variant], label=variant)
  ax.set_xticks(x, ["clean", "under FGSM", f"under {summary.analysis['attack']}"])
  ax.set_ylim(0, 1)
  ax.set_ylabel("test accuracy")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def inspection_section(inspection: dict, out_dir: str) -> str:
  """Per model ({variant: Inspection}): detectors per concept category (real /
  adversarial) at every dissected layer, the detector's ROC AUCs, and links to the
  dissection and tracing pages."""
  if not inspection:
    return ""
  rows, thresholds = [], {ins.iou_threshold for ins in inspection.values()} - {None}
  for variant, ins in inspection.items():
    link = lambda p: html.escape(os.path.relpath(p, out_dir))
    for layer, d in ins.dissection.items():
      cats = "; ".join(f"{html.escape(c)} {d.real[c]} / {d.adversarial.get(c, 0)}"
                       for c in d.real)
      rows.append(f"<tr><td>{html.escape(variant)}</td><td>{html.escape(layer)}</td>"
                  f"<td>{cats}</td><td>{d.changed}</td></tr>")
    det = ins.detection
    aucs = "; ".join(f"{html.escape(a)} {number(e.auc)} (fooled vs correct "
                     f"{number(e.auc_successful)})" for a, e in det.attacks.items())
    links = " &middot; ".join(f"<a href='{link(path)}'>{'tracing' if name == 'explain' else name}"
                              "</a>" for name, path in ins.pages.items())
    rows.append(f"<tr><td>{html.escape(variant)}</td><td colspan='3'>detection at "
                f"{html.escape(det.layer)}: ROC AUC {aucs} &nbsp; {links}</td></tr>")
  return ("<h2>What the neurons detect, and why predictions were made</h2>"
          "<p class='note'>The first seed's models, dissected on the probe images and their "
          "adversarial versions (detectors: units whose best concept has IoU &gt; "
          f"{', '.join(f'{t:g}' for t in sorted(thresholds)) or 'the threshold'}), and "
          "the detector of adversarial inputs from the classes of each input's most "
          "influential neurons.</p><table><tr><th>model</th><th>layer</th>"
          "<th>detectors per category, real / adversarial</th><th>units whose concept "
          f"changed</th></tr>{''.join(rows)}</table>")


def eps_text(eps: float) -> str:
  """4/255 for budgets on the 8-bit grid, else the number."""
  steps = eps * 255
  return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-6 else f"{eps:.4g}"


def training_text(config: dict) -> str:
  """One sentence on how the three models were trained, from the config."""
  adv, cons = config["adv"], config["consistency"]
  warmup = (f", eps ramped up over {adv['eps_warmup_steps']} steps"
            if adv["eps_warmup_steps"] else "")
  anchor = ", anchored on the clean features" if cons["anchor_clean"] else ""
  return (f"Training: {config['model']['name']} on {config['dataset']['name']}, "
          f"{config['num_train_steps']} steps of batch {config['batch_size']} "
          f"({config['optimizer']['name']}, learning rate {config['optimizer']['learning_rate']:g}). "
          f"adv and adv_consistent train on {adv['attack']} ({adv['steps']} steps, "
          f"eps {eps_text(adv['eps'])}{warmup}); adv_consistent adds lambda = {cons['weight']:g} x "
          f"{cons['distance']} distance at {', '.join(cons['layers'])}{anchor}.")


def _figure_sections(summary, results: dict, out_dir: str) -> tuple:
  """Draws the page's figures into out_dir/figures; returns (histograms, grids, eps curve)."""
  fig_dir = os.path.join(out_dir, "figures")
  os.makedirs(fig_dir, exist_ok=True)
  _accuracy(summary, os.path.join(fig_dir, "accuracy.png"))
  layer = summary.layer
  hists = []
  for l in next(iter(results.values())).layers:
    _histograms(l, results, os.path.join(fig_dir, f"hist_{l}.png"))
    hists.append(f"<img src='figures/hist_{l}.png'>")
  grids = []
  for variant, m in summary.models.items():
    src = os.path.join(m.workdirs[0], "analysis", "figures", f"grid_{layer}_largest_drop.png")
    if os.path.exists(src):
      name = f"grid_{variant}_{layer}.png"
      shutil.copyfile(src, os.path.join(fig_dir, name))
      grids.append(f"<h4 style='color:{COLOURS[variant]}'>{variant}</h4>"
                   f"<img src='figures/{name}' class='grid'>")
  curve = ""
  curves = {v: m.eps_curve for v, m in summary.models.items() if m.eps_curve}
  if curves:
    figures.eps_curves(curves, os.path.join(fig_dir, "eps_curve.png"), COLOURS,
                       summary.analysis["norm"])
    curve = ("<h2>Consistency against the attack's budget</h2><p class='note'>Each model "
             f"attacked by its own {html.escape(str(summary.analysis['attack']))} at "
             "multiples of the analysis eps; consistency on the adversarial images at the "
             "decisive layer, over the neurons included at every eps (dotted: at each "
             "eps).</p><img src='figures/eps_curve.png'>")
  elif not summary.analysis.get("eps_curve"):
    curve = ("<h2>Consistency against the attack's budget</h2><p class='note'>Not drawn: "
             "this run's analysis.eps_curve is empty (make demo leaves it out to stay "
             "within ten minutes); make reproduce draws it at its default multiples of "
             "eps.</p>")
  return "".join(hists), "".join(grids), curve


def _caution(summary) -> str:
  """The warning a page of fewer seeds than the protocol's carries."""
  seeds, needed = len(summary.seeds), summary.criteria.get("min_seeds", 5)
  if seeds >= needed:
    return ""
  lead = ("One seed decides nothing" if seeds == 1 else
          f"{seeds} seeds are fewer than the {needed} the findings are decided with")
  return (f"<p class='warn'>{lead}: a difference "
          "between two runs can be as large as the spread between seeds of one. These "
          "numbers show the pipeline; the findings are decided by the full protocol, "
          f"{html.escape(FULL_COMMAND)}.</p>")


def _selection_section(sel, out_dir: str) -> str:
  if not sel:
    return ("<h2>Selection</h2><p class='note'>Not run here: the consistent loss "
            "is the config's (its docstring records how it was chosen).</p>")
  choice = sel.choice
  chose = (f"chose <b>{html.escape(choice.name)}</b> ({html.escape(choice.form)}, "
           f"lambda {choice.weight:g} at {html.escape(', '.join(choice.layers))})"
           if choice else "found no candidate that meets the rule, so the config's own "
           "setting was kept")
  page_link = os.path.relpath(sel.page, out_dir)
  return (f"<h2>Selection</h2><p>On the validation split, before any test image was read, "
          f"the rule declared in the config ({html.escape(sel.rule)}) {chose} among "
          f"{sel.num_candidates} candidates (<a href='{html.escape(page_link)}'>every "
          "candidate</a>).</p>")


def _protocol_section(summary) -> str:
  """Which protocol decided, the commit that declared it and the one the run ran from."""
  p = summary.protocol
  declared = (f"declared in commit <code>{html.escape(p.declared_in[:12])}</code>"
              if p.declared_in else "whose declaring commit is not recorded yet")
  head = (f"run from commit <code>{html.escape(p.head[:12])}</code>"
          + (" with uncommitted changes" if p.head_has_changes else "")
          if p.head else "run outside a git checkout")
  changed = ("the criteria are the declared ones" if p.as_declared else
             "<b>criteria changed from the declared ones</b>: " + html.escape("; ".join(
                 f"{k} {v[0]!r} -> {v[1]!r}" for k, v in p.changed.items())))
  text = f"<p class='note'>Protocol {p.version}, {declared}; {head}; {changed}.</p>"
  env = summary.environment
  if env:
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    text += (f"<p class='note'>Computed with {html.escape(packages)} on "
             f"{env['devices']} {html.escape(env['backend'])} device(s), "
             f"{html.escape(env['cpu'])} ({html.escape(' '.join(env['cpu_features']))}). "
             "Another machine or library version rounds differently and trains other "
             "models from the same seeds: its numbers are another draw of this protocol, "
             "not these.</p>")
  if p.version == 2:
    shares = ", ".join(f"seed {t.seed}: {t.num_images}" for t in summary.test_shares)
    text += ("<p class='note'>Protocol 2: every threshold is compared with the bound of its "
             "interval over seeds; each seed is analysed on its own share of the test split, "
             f"the same for every model of the seed (images per seed: {shares}); finding 3 is "
             "decided on (a) the successful attacks (images turned from right to wrong) and "
             "(b) each model's consistency at a matched attack success rate of "
             f"{summary.criteria['match_rate']:.0%}, read off its eps sweep; the robust "
             f"gain by {html.escape(summary.robust_evaluation.text)}. The paper's "
             "measure, each model's own adversarial images, is shown beside them and decides "
             "nothing.</p>")
  return text


def _matched_section(summary) -> str:
  """Protocol 2: each model's consistency at the matched success rate, seed by seed."""
  models = {v: m.matched for v, m in summary.models.items() if m.matched}
  if not models:
    return ""
  def cell(m):
    if m.value is not None:
      return f"{m.value:.3f} <small>at {m.factor:.3g} x eps</small>"
    if not m.reached:
      top = "no sweep" if m.max_rate is None else f"at most {m.max_rate:.0%}"
      return f"never reached <small>({top})</small>"
    return "no neuron included"
  rows = "".join(f"<tr><td>{html.escape(v)}</td>" + "".join(
      f"<td>{cell(m)}</td>" for m in mm.per_seed) + "</tr>" for v, mm in models.items())
  first = next(iter(models.values()))
  derived = any(m.derived for mm in models.values() for m in mm.per_seed)
  robust = "".join(
      f"<li>{html.escape(v)}: {number(m.robust)}{interval_text(m.robust_ci)}"
      + (f" <b>(checks against gradient masking flagged: "
         f"{html.escape(', '.join(m.robust_flagged))})</b>" if m.robust_flagged else "")
      + "</li>" for v, m in summary.models.items() if m.robust is not None)
  return (f"<h2>Consistency at matched attack success ({first.rate:.0%})</h2>"
          f"<p class='note'>Each model's {html.escape(first.measure)} consistency at the "
          "eps where its attack turns this share of its correctly classified images wrong, "
          "interpolated linearly in eps between the two points of its sweep that bracket it. "
          "A model that never reaches the rate within the sweep has no value on that seed, "
          "and the comparisons it enters are undecided."
          + (" Some success rates were derived from accuracies (the sweep recorded none)."
             if derived else "") + "</p><table><tr><th>model</th>"
          + "".join(f"<th>seed {s}</th>" for s in summary.seeds) + f"</tr>{rows}</table>"
          + (f"<p>Accuracy under {html.escape(summary.robust_evaluation.text)}:</p>"
             f"<ul>{robust}</ul>" if robust else ""))


def write(summary, results: dict, out_dir: str) -> str:
  """Writes summary.json (the Summary's JSON), figures/ and index.html into out_dir;
  returns the page's path.

  results: {variant: the AnalysisResults of its first seed}, whose histograms are drawn.
  """
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary.to_json(), f, indent=2)
  hists, grids, curve = _figure_sections(summary, results, out_dir)
  layer, attack = summary.layer, html.escape(str(summary.analysis["attack"]))
  statements = "".join(
      f"<li><b>{html.escape(s.finding)}: "
      f"<span style='color:{VERDICT_COLOURS[s.holds]}'>{html.escape(s.verdict)}</span>"
      f"</b><br>{html.escape(s.evidence)}</li>" for s in summary.statements)
  notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in summary.notes)
  version = summary.protocol.version
  confidence = f"{summary.differences.confidence:.0%}"
  rule = (f"A statement holds only when every paired difference that decides it has its "
          f"{confidence} interval over seeds on the right side of zero and its thresholds are "
          "met" if version == 1 else
          f"A statement holds only when every check is met, each threshold compared with the "
          f"bound of its {confidence} interval over seeds; it does not hold when one fails, "
          "and is undecided when a number a check needs is missing")
  similarity = next(iter(results.values())).settings["similarity"]
  tables = "".join(model_table(v, m, out_dir, len(summary.seeds) > 1, similarity,
                               summary.analysis["attack"]) for v, m in summary.models.items())
  body = f"""<h1>Towards interpretable networks with adversarial examples: the three findings</h1>
<p class="note">Models of the same config: standard training, adversarial training
(adv), adversarial training with the consistent loss (adv_consistent) and, where trained,
the paper's symmetric form of that loss (adv_symmetric), each analysed
with the same attack ({attack}, eps =
{eps_text(summary.eps)}, {summary.analysis['steps']} steps) and top-{summary.analysis['k']}
images per neuron; seeds {list(summary.seeds)}. Findings are read at layer
<b>{html.escape(layer)}</b>, where the consistent loss acts. Statements are computed from the
numbers with fixed criteria (summary.json, "criteria").</p>
<p class="note">{html.escape(training_text(summary.config))}</p>
{_protocol_section(summary)}{_caution(summary)}{_selection_section(summary.selection, out_dir)}
<h2>Findings</h2><ul class="findings">{statements}</ul>
<p class="note">{rule}
(criteria, fixed in advance: {html.escape(json.dumps(summary.criteria))}).</p>
{decisive_table(summary.differences, version)}{_matched_section(summary)}{notes}
<h2>Accuracy</h2><img src="figures/accuracy.png">
<h2>Consistency per model</h2>
<p class="note">The attack controls: "successful attacks" keeps only the adversarial images
that changed the model's prediction; the shared adversarial set is made once against the
standard model and scored on every model, so all models see identical inputs. A neuron
counts in a set only when its top-k there is decided by its activations (it fires on at
least k images and does not tie at the k-th place); the others are left out and
counted.</p>{tables}
<h2>Differences at every layer and on the control sets</h2>
<p class="note">Model differences in mean consistency (A - B) on each set, and the standard
model's paired real - set difference, seed by seed with their intervals.</p>
{layer_differences(summary.differences)}
{curve}
{inspection_section(summary.inspection, out_dir)}
<h2>Consistency histograms</h2>{hists}
<h2>Neurons whose consistency fell most under attack ({html.escape(layer)})</h2>
<p class="note">Each row: a neuron's top real images, then its top adversarial images
(true class -&gt; predicted class).</p>{grids}
"""
  return write_page(out_dir, "interp_jax: the paper's findings", body)
