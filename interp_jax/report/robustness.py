"""Robustness in words: AutoAttack's stages and the checks against gradient masking.

    print(autoattack_summary(report["autoattack"]))    # a section of robustness.json
"""


def autoattack_summary(section: dict) -> str:
  """A few lines: accuracy after each stage, what each broke, and every flagged check."""
  broken, after = section["broken"], section["accuracy_after"]
  lines = [f"AutoAttack ({section['version']}, {section['norm']} eps={section['eps']:.4g}): "
           f"robust accuracy {section['accuracy']:.4f}"]
  lines.append(f"  {'stage':<10} {'accuracy after':>14} {'broke':>6} {'seconds':>8}")
  lines.append(f"  {'clean':<10} {after['clean']:>14.4f} {broken['clean']:>6} {'':>8}")
  for stage in section["stages"]:
    lines.append(f"  {stage:<10} {after[stage]:>14.4f} {broken[stage]:>6} "
                 f"{section['seconds'][stage]:>8.1f}")
  flagged = {k: v for k, v in section["checks"].items() if v["flagged"]}
  if flagged:
    lines.append("  Checks against gradient masking FLAGGED:")
    lines += [f"    {k}: {v['message']}" for k, v in flagged.items()]
  else:
    lines.append(f"  Checks against gradient masking: none flagged ({', '.join(section['checks'])})")
  return "\n".join(lines)
