"""What the commands print when they finish: the results as text for a terminal.

    print(reproduction_text(summary, "runs/reproduce", seconds))
    print(selection_text(selection))
    print(robustness_text(report, "runs/demo/adv/robustness.json"))

Each command is parse, one library call and one of these; the files it writes
(summary.json, selection.json) hold the same numbers.
"""

import os


def _fmt(v) -> str:
  return "n/a" if v is None else f"{v:.3f}"


def selection_text(out) -> str:
  """select's table (a SelectionResult): every run's validation numbers and whether the
  rule admits it."""
  lines = [f"\n{'run':<24}{'clean':>7}{'attacked':>9}  adversarial consistency at "
           f"{out.layer} (validation)"]
  for name, m in [("standard", out.standard), ("adv", out.adv)] + [
      (c.name, c) for c in out.candidates]:
    note = "" if name in ("standard", "adv") else (
        "  eligible" if m.eligible else "  " + "; ".join(m.reasons))
    lines.append(f"{name:<24}{_fmt(m.clean):>7}{_fmt(m.attacked):>9}  "
                 f"{_fmt(m.adversarial_consistency)}{note}")
  choice = out.choice
  lines.append(f"\nchosen: {choice.name if choice else 'none (no candidate meets the rule)'}")
  return "\n".join(lines)


def reproduction_text(summary, workdir: str, seconds: float) -> str:
  """reproduce's Summary: the selection, each model's numbers at the decisive layer,
  the inspection's figures, the protocol and every statement with its evidence."""
  layer, lines = summary.layer, []
  if summary.selection:
    choice = summary.selection.choice
    lines.append(f"\nselection on the validation split: "
                 f"{choice.name if choice else 'no candidate met the rule; the config is kept'}")
  lines.append(f"\n{'model':<16}{'clean':>7}{'fgsm':>7}{'pgd':>7}{'shared':>7}  consistency "
               f"at {layer}: real / adversarial / successful / shared")
  for v, m in summary.models.items():
    sets = m.layers[layer].sets
    lines.append(f"{v:<16}{m.clean:>7.3f}{m.fgsm:>7.3f}{m.pgd:>7.3f}"
                 f"{_fmt(m.shared):>7}  {_fmt(sets['real'])} / {_fmt(sets['adversarial'])} / "
                 f"{_fmt(sets['successful'])} / {_fmt(sets.get('shared'))}")
  for v, ins in summary.inspection.items():
    det = ins.detection
    aucs = ", ".join(f"{a} {e.auc:.3f}" for a, e in det.attacks.items())
    cats = ""
    if ins.dissection:
      last = list(ins.dissection)[-1]
      d = ins.dissection[last]
      cats = (f"detectors at {last} (real/adv): " + ", ".join(
          f"{c} {d.real[c]}/{d.adversarial[c]}" for c in d.real) + "; ")
    lines.append(f"{v:<16}{cats}detection AUC at {det.layer}: {aucs}")
  proto = summary.protocol
  declared = proto.declared_in or "a commit not recorded yet"
  criteria = "as declared" if proto.as_declared else "changed: " + ", ".join(proto.changed)
  lines.append(f"\nprotocol {proto.version} (declared in {declared}; criteria {criteria})")
  for s in summary.statements:
    lines.append(f"\n{s.finding}: {s.verdict.upper()}\n  {s.evidence}")
  lines += [f"note: {note}" for note in summary.notes]
  lines.append(f"\nreport: {os.path.join(workdir, 'report', 'index.html')} ({seconds:.0f} s)")
  return "\n".join(lines)


def analysis_text(results, page: str) -> str:
  """analyze's summary of an AnalysisResults: accuracies, then per layer each set's mean
  consistency over its included neurons (their number) and its chance level."""
  acc = results.accuracy
  lines = [f"accuracy: clean {acc.clean:.3f}, adversarial {acc.adversarial:.3f}"
           + (f", shared set {acc.shared:.3f}" if acc.shared is not None else "")
           + f"; the attack changed {results.attack.success_rate:.1%} of the predictions",
           "consistency: mean over the neurons included in each set (their number), chance level"]
  names = [s for s in ("real", "adversarial", "successful", "shared")
           if s in results.set_names()]
  lines.append(f"{'layer':<8}" + "".join(f"{n:>20}" for n in names)
               + f"{'overlap':>9}{'cosine':>8}")
  for layer, info in results.layers.items():
    cells = "".join(f"{_fmt(s.mean)} ({s.num_included}) {_fmt(s.chance.mean)}".rjust(20)
                    for s in (info.sets[n] for n in names))
    lines.append(f"{layer:<8}{cells}{_fmt(info.topk_overlap.mean):>9}"
                 f"{_fmt(info.feature_cosine):>8}")
  lines.append(f"report: {page}")
  return "\n".join(lines)


def dissection_text(results, page: str) -> str:
  """dissect's summary of a DissectionResults: detectors per concept category, real /
  adversarial, per layer."""
  cats = sorted(set(results.concepts.categories))
  lines = ["detectors per concept category, real / adversarial",
           f"{'layer':<10}{'units':>6}" + "".join(f"{c:>14}" for c in cats) + f"{'changed':>9}"]
  for layer, info in results.layers.items():
    r, a = info.sets["real"], info.sets["adversarial"]
    cells = "".join(f"{r.detectors_per_category.get(c, 0):>8} / "
                    f"{a.detectors_per_category.get(c, 0):<3}" for c in cats)
    lines.append(f"{layer:<10}{info.units:>6}{cells}{len(info.changed):>9}")
  lines.append(f"report: {page}")
  return "\n".join(lines)


def tracing_text(results, page: str) -> str:
  """explain's summary of a TracingResults: detection AUCs and each explained example's
  top neurons."""
  lines = [f"layer {results.layer}; accuracy "
           + ", ".join(f"{k} {v:.3f}" for k, v in results.accuracy.items())]
  for name, e in results.detection.attacks.items():
    lines.append(f"detection of {name}: ROC AUC {e.auc:.3f} (all), "
                 f"{_fmt(e.auc_successful)} (fooled against correct)")
  for ex in results.examples:
    top = ", ".join(f"#{n.neuron} ({n.pd:.3f})" for n in ex.neurons[:3])
    lines.append(f"{ex.kind}: test image {ex.test_index}, top neurons {top}")
  lines.append(f"report: {page}")
  return "\n".join(lines)


def robustness_text(report, path: str) -> str:
  """attack's summary of a RobustnessReport: clean accuracy, accuracy under each attack,
  and AutoAttack's stages and checks when it ran."""
  from interp_jax.report.robustness import autoattack_summary
  line = (f"clean accuracy {report.clean_accuracy:.4f}; "
          + "; ".join(f"{k} {v.accuracy:.4f}" for k, v in report.attacks.items())
          + f" -> {path}")
  if report.autoattack is not None:
    line += "\n" + autoattack_summary(report.autoattack)
  return line
