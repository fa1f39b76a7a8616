"""The reproduction page's tables: the deciding differences, each model's measures at
every layer with their intervals over seeds, and the differences on every control set.

Pure functions of a Summary's parts (reproduction/summary.py; reproduction.py
documents summary.json) returning HTML.
"""

import html
import os

COLOURS = {"standard": "#1f77b4", "adv": "#2ca02c", "adv_consistent": "#d62728",
           "adv_symmetric": "#9467bd"}

SETS = (("real", "real"), ("adversarial", "adversarial"), ("mixed", "real + adv"),
        ("adversarial_by_prediction", "adv, by prediction"), ("successful", "successful attacks"),
        ("shared", "shared adv set"))


def number(v, digits=3) -> str:
  return "n/a" if v is None else f"{v:.{digits}f}"


def interval_text(ci) -> str:
  """' [low, high]' for a 95% interval over seeds, '' for none."""
  return "" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _interval(d) -> str:
  if d is None:
    return "n/a"
  if d.low is None:
    return f"{d.mean:+.3f}"
  return f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"


def _side(d) -> str:
  return "" if d is None else d.side


DECISIVE = (("standard_real_minus_chance", "1", "standard: real - chance"),
            ("standard_real_minus_adversarial", "2", "standard: real - adversarial (paired)"),
            ("exposure_standard", "2", "standard: share of above-chance consistency removed"),
            ("adv_consistent_minus_adv", "3", "adversarial consistency: adv_consistent - adv"),
            ("adv_consistent_minus_standard", "3",
             "adversarial consistency: adv_consistent - standard"),
            ("exposure_adv_minus_adv_consistent", "3", "exposure: adv - adv_consistent"),
            ("exposure_standard_minus_adv_consistent", "3",
             "exposure: standard - adv_consistent"),
            ("clean_drop", "3", "clean accuracy: standard - adv_consistent"),
            ("robust_gain", "3", "accuracy under attack: adv_consistent - standard"),
            ("adv_symmetric_minus_adv", "control",
             "adversarial consistency: adv_symmetric (paper's loss) - adv"),
            ("adv_consistent_minus_adv_symmetric", "control",
             "adversarial consistency: adv_consistent - adv_symmetric"))


PAPER = "the paper's measure, decides nothing here"
# Protocol 2: (name, finding, what, the bound compared and with what ("" = none)).
DECISIVE_V2 = (
    ("standard_real_minus_chance", "1", "standard: real - chance",
     "lower, in sd of chance, >= measurable_sigmas"),
    ("standard_real_minus_adversarial", "2", "standard: real - adversarial (paired)",
     "lower > 0"),
    ("exposure_standard", "2", "standard: share of above-chance consistency removed",
     "lower >= exposed_share"),
    ("successful_adv_consistent_minus_adv", "3a",
     "successful attacks (right to wrong): adv_consistent - adv", "lower > 0"),
    ("successful_adv_consistent_minus_standard", "3a",
     "successful attacks (right to wrong): adv_consistent - standard", "lower > 0"),
    ("matched_adv_consistent_minus_adv", "3b",
     "at matched attack success: adv_consistent - adv", "lower > 0"),
    ("matched_adv_consistent_minus_standard", "3b",
     "at matched attack success: adv_consistent - standard", "lower > 0"),
    ("clean_drop", "3", "clean accuracy: standard - adv_consistent",
     "upper <= max_clean_drop"),
    ("robust_gain", "3", "accuracy under the declared evaluation: adv_consistent - standard",
     "lower >= min_robust_gain"),
    ("adv_consistent_minus_adv", PAPER, "own adversarial images: adv_consistent - adv", ""),
    ("adv_consistent_minus_standard", PAPER,
     "own adversarial images: adv_consistent - standard", ""),
    ("robust_gain_analysis", "control",
     "accuracy under the analysis attack: adv_consistent - standard", ""),
    ("successful_adv_symmetric_minus_adv", "control",
     "successful attacks: adv_symmetric (paper's loss) - adv", ""),
    ("matched_adv_symmetric_minus_adv", "control",
     "at matched attack success: adv_symmetric (paper's loss) - adv", ""))


def decisive_table(differences, version: int = 1) -> str:
  """The differences that decide the findings (a Differences' `decisive`)."""
  decisive = differences.decisive
  if version == 2:
    rows = "".join(
        f"<tr><td>{html.escape(text)}</td><td>{html.escape(finding)}</td>"
        f"<td>{_interval(decisive.get(name))}</td>"
        f"<td>{html.escape(bound) or '&mdash;'}</td></tr>"
        for name, finding, text, bound in DECISIVE_V2 if name in decisive)
    return ("<table><tr><th>paired difference over seeds, at "
            f"{html.escape(differences.layer)}</th><th>finding</th><th>mean "
            f"[{differences.confidence:.0%} interval]</th><th>bound compared</th></tr>"
            f"{rows}</table>")
  rows = "".join(
      f"<tr><td>{html.escape(text)}</td><td>{finding}</td>"
      f"<td>{_interval(decisive.get(name))}</td><td>{_side(decisive.get(name))}</td></tr>"
      for name, finding, text in DECISIVE if name in decisive)
  return ("<table><tr><th>paired difference over seeds, at "
          f"{html.escape(differences.layer)}</th><th>finding</th><th>mean "
          f"[{differences.confidence:.0%} interval]</th><th>side of zero</th></tr>"
          f"{rows}</table>")


def layer_differences(differences) -> str:
  """Every layer x control set: the model differences and the standard model's drop."""
  names = [n for n in ("standard_real_minus_set", "adv_consistent_minus_adv",
                       "adv_consistent_minus_standard", "adv_minus_standard",
                       "adv_symmetric_minus_adv")
           if any(n in sets.get(s, {}) for sets in differences.layers.values()
                  for s in sets)]
  head = "".join(f"<th>{html.escape(n.replace('_set', '_(set)'))}</th>" for n in names)
  rows = []
  for layer, sets in differences.layers.items():
    for set_name, d in sets.items():
      if d:
        rows.append(f"<tr><td>{html.escape(layer)}</td><td>{html.escape(set_name)}</td>"
                    + "".join(f"<td>{_interval(d.get(n))}</td>" for n in names) + "</tr>")
  return (f"<table><tr><th>layer</th><th>set</th>{head}</tr>{''.join(rows)}</table>")


def _layer_rows(m, spread: bool, purity: bool) -> str:
  """Every layer: each set's mean beside its chance level and included neurons."""
  rows = []
  for l, i in m.layers.items():
    means, cis, chances = ((i.purity, i.purity_ci, i.purity_chance) if purity else
                           (i.sets, i.sets_ci, i.chance))
    cells = []
    for s, _ in SETS:
      if s not in means:
        continue
      sd = interval_text(cis.get(s)) if spread and means[s] is not None else ""
      cells.append(f"<td>{number(means[s])}{sd}<br><small>chance {number(chances[s])} "
                   f"&middot; {number(i.included[s], 0)}/{i.num_neurons}</small></td>")
    extra = "" if purity else (f"<td>{number(i.topk_overlap)}</td>"
                               f"<td>{number(i.feature_cosine)}</td>")
    rows.append(f"<tr><td>{html.escape(l)}</td>{''.join(cells)}{extra}</tr>")
  first = next(iter(m.layers.values()))
  present = [t for s, t in SETS if s in (first.purity if purity else first.sets)]
  head = "".join(f"<th>{html.escape(t)}</th>" for t in present)
  tail = "" if purity else "<th>top-k overlap</th><th>feature cosine</th>"
  return f"<table><tr><th>layer</th>{head}{tail}</tr>{''.join(rows)}</table>"


def model_table(variant: str, m, out_dir: str, spread: bool, similarity: str = "",
                attack: str = "pgd") -> str:
  """A model's accuracies (a ModelSummary) and, for every layer, its measures under the
  data set's similarity and as class purity; `spread` adds the 95% interval over seeds."""
  def cell(key):
    value = getattr(m, key)
    return number(value) + (interval_text(getattr(m, key + "_ci"))
                            if spread and value is not None else "")

  analysis_page = os.path.relpath(os.path.join(m.workdirs[0], "analysis", "index.html"),
                                  out_dir)
  shared = f", on the shared adversarial set {cell('shared')}" if m.shared is not None else ""
  purity = ("" if similarity == "identity" else
            "<p class='note'>Class purity (identity similarity):</p>"
            + _layer_rows(m, spread, purity=True))
  return (f"<h3 style='color:{COLOURS[variant]}'>{variant}</h3>"
          f"<p>accuracy: clean {cell('clean')}, under FGSM {cell('fgsm')}, under {html.escape(attack)} "
          f"{cell('pgd')}{shared}; the attack changed {cell('success_rate')} of the "
          f"predictions &nbsp; (<a href='{html.escape(analysis_page)}'>full analysis</a>"
          f"{' of the first seed' if spread else ''})</p>"
          f"<p class='note'>Similarity: {html.escape(similarity or 'as analysed')}. Each cell: "
          "the mean over the neurons included in the set"
          f"{' (over seeds, with its 95% interval)' if spread else ''}, the set's chance level, "
          "and included / all neurons.</p>"
          + _layer_rows(m, spread, purity=False) + purity)
