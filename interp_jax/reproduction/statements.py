"""What the statements of both protocols share: the findings' names, how a number is
written, which numbers each finding needs and how checks become a verdict
(findings.py, findings_v2.py)."""

from interp_jax.reproduction.summary import Statement

NAMES = ("1. Neuron consistency can be measured",
         "2. Adversarial images expose ambiguous neurons",
         "3. Adversarial training with the consistent loss repairs consistency")


def fmt(v) -> str:
  return "n/a" if v is None else f"{v:.3f}"


def gaps(summary, layer: str) -> list[str]:
  """Per finding, which number it needs is missing (a mean over no included neuron)."""
  def set_of(v, name):
    return summary.models[v].layers[layer].sets[name]

  std = summary.models["standard"].layers[layer]
  needs = [[("standard's real set", set_of("standard", "real")),
            ("standard's real chance", std.chance["real"])],
           [("standard's real set", set_of("standard", "real")),
            ("standard's real and adversarial sets",
             std.comparisons["real_vs_adversarial"].other)],
           [(f"{v}'s adversarial set", set_of(v, "adversarial"))
            for v in ("standard", "adv", "adv_consistent")]]
  return ["; ".join(what for what, value in need if value is None) for need in needs]


def verdict(finding: str, checks: list, evidence: str, seeds: int, min_seeds: int,
            why_open: str = "cannot be decided") -> Statement:
  """checks: [(name, ok, ...)], ok True, False or None (the check cannot be judged: no
  interval with one seed, a matched rate never reached). Fewer than min_seeds seeds
  decide nothing, whatever the checks; the evidence then says which checks the
  numbers already miss and which were not judged."""
  failed = [c[0] for c in checks if c[1] is False]
  open_ = [c[0] for c in checks if c[1] is None]
  if seeds < min_seeds:
    holds = None
    text = ("undecided: one seed decides nothing" if seeds == 1 else
            f"undecided: {seeds} seeds, and the protocol decides with at least {min_seeds}")
    if failed:
      evidence += f" (not met on these seeds: {', '.join(failed)})"
    if open_:
      evidence += f" (not judged: {', '.join(open_)} {why_open})"
    failed = []
  elif failed:
    holds, text = False, "does not hold"
    if open_:
      evidence += f" (undecided besides: {', '.join(open_)})"
  elif open_:
    holds, text = None, f"undecided: {', '.join(open_)} {why_open}"
  else:
    holds, text = True, "holds"
  return Statement(finding, holds, text, tuple(failed),
                   tuple(open_) if holds is None and seeds >= min_seeds else (), evidence)


def missing_number(finding: str, layer: str, gap: str) -> Statement:
  """The statement of a finding a number is missing for (`gap`, from gaps)."""
  return Statement(finding, None, "undecided: a number it needs is missing", (), (),
                   f"cannot be decided at {layer}: no neuron is included in {gap} (each "
                   "fires on fewer than k images there)")
