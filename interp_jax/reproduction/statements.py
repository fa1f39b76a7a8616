"""What the statements of both protocols share: the findings' names, how a number is
written, and which numbers each finding needs (findings.py, findings_v2.py)."""

NAMES = ("1. Neuron consistency can be measured",
         "2. Adversarial images expose ambiguous neurons",
         "3. Adversarial training with the consistent loss repairs consistency")


def fmt(v) -> str:
  return "n/a" if v is None else f"{v:.3f}"


def gaps(summary: dict, layer: str) -> list[str]:
  """Per finding, which number it needs is missing (a mean over no included neuron)."""
  def set_of(v, name):
    return summary["models"][v]["layers"][layer]["sets"][name]

  std = summary["models"]["standard"]["layers"][layer]
  needs = [[("standard's real set", set_of("standard", "real")),
            ("standard's real chance", std["chance"]["real"])],
           [("standard's real set", set_of("standard", "real")),
            ("standard's real and adversarial sets",
             std["comparisons"]["real_vs_adversarial"]["adversarial"])],
           [(f"{v}'s adversarial set", set_of(v, "adversarial"))
            for v in ("standard", "adv", "adv_consistent")]]
  return ["; ".join(what for what, value in need if value is None) for need in needs]
