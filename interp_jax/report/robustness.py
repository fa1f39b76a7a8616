"""Robustness in words: AutoAttack's stages and the checks against gradient masking.

    print(autoattack_summary(report.autoattack))    # a RobustnessReport's AutoAttackReport
    page_part = autoattack_html(report.autoattack)  # the same as an HTML table

The schema of DIR/robustness.json (DIR/robustness_validation.json for the
validation split), written by the attack command (reproduction/stages.py's
attack_workdir) and read back as analysis.results.RobustnessReport:

    {"checkpoint_step": int, "split": "test" | "validation", "model": str,
     "dataset": str, "num_images": int, "clean_accuracy": float,
     "attacks": {NAME: {"eps": float, "norm": str, "steps": int, "step_size": float,
                        "accuracy": float, "seconds": float}},
     "autoattack": {                                  # when autoattack was asked
        "version": "standard" | "plus" | "custom", "eps": float, "norm": str,
                                                      # ("rand" is the library's, for
                                                      # random models: attacks.autoattack)
        "stages": [STAGE, ...], "options": {STAGE: {option: value}},
        "accuracy": float,                            # robust: no stage broke the image
        "accuracy_after": {"clean": float, STAGE: float, ...},
        "broken": {"clean": int, STAGE: int, ...},    # images each stage broke first
        "seconds": {STAGE: float},
        "transfer_accuracy": float | null,            # on the transfer model's PGD-10 images
        "checks": {CHECK: {"flagged": bool, "value": ..., "message": str}}}}

FGSM has no steps or step_size; AutoAttack's stages take their published
budgets, not the command's steps. CHECK is zero_gradients, probabilities,
nondeterministic, square_breaks or transfer (attacks/masking.py): a flagged
check says the robust accuracy may come from gradient masking.

With save_images, DIR/adversarial/NAME.npz (adversarial_validation/ for the
validation split) holds `images` (float32 NHWC in [0, 1]), `index` (the
split's index of each source image), `label` (its true class) and
`prediction` (the model's class for the adversarial image); autoattack.npz
adds `broken_by` ("clean", the stage that broke the image, or "" where it
stayed robust; then `images` holds APGD-CE's best try).
"""

import html


def autoattack_summary(section) -> str:
  """A few lines: accuracy after each stage, what each broke, and every flagged check."""
  broken, after = section.broken, section.accuracy_after
  lines = [f"AutoAttack ({section.version}, {section.norm} eps={section.eps:.4g}): "
           f"robust accuracy {section.accuracy:.4f}"]
  lines.append(f"  {'stage':<10} {'accuracy after':>14} {'broke':>6} {'seconds':>8}")
  lines.append(f"  {'clean':<10} {after['clean']:>14.4f} {broken['clean']:>6} {'':>8}")
  for stage in section.stages:
    lines.append(f"  {stage:<10} {after[stage]:>14.4f} {broken[stage]:>6} "
                 f"{section.seconds[stage]:>8.1f}")
  flagged = {k: v for k, v in section.checks.items() if v.flagged}
  if flagged:
    lines.append("  Checks against gradient masking FLAGGED:")
    lines += [f"    {k}: {v.message}" for k, v in flagged.items()]
  else:
    lines.append(f"  Checks against gradient masking: none flagged ({', '.join(section.checks)})")
  return "\n".join(lines)


def autoattack_html(section) -> str:
  """The section as a page's paragraph and table: accuracy after each stage, the images
  each stage broke first, and the checks (a flagged one in bold, with its message)."""
  after, broken = section.accuracy_after, section.broken
  rows = "".join(f"<tr><td>{html.escape(s)}</td><td>{after[s]:.4f}</td><td>{broken[s]}</td>"
                 f"<td>{section.seconds.get(s, 0):.1f}</td></tr>"
                 for s in ("clean", *section.stages))
  checks = "".join(
      f"<li>{'<b>FLAGGED</b> ' if c.flagged else ''}{html.escape(name)}: "
      f"{html.escape(c.message)}</li>" for name, c in section.checks.items())
  transfer = section.transfer_accuracy
  return (f"<h2>Robust accuracy: AutoAttack</h2><p>AutoAttack {html.escape(section.version)} "
          f"({html.escape(section.norm)}, eps = {section.eps:.4g}): robust accuracy "
          f"<b>{section.accuracy:.4f}</b>, each image's worst case over the stages, each "
          f"stage run on the images the earlier ones left robust"
          + (f"; on images attacked against another model {transfer:.4f}"
             if transfer is not None else "") + ".</p>"
          "<table><tr><th>after</th><th>accuracy</th><th>broke first</th><th>seconds</th></tr>"
          f"{rows}</table><p>Checks against gradient masking (a flagged check says the robust "
          f"accuracy may come from masked gradients, not robustness):</p><ul>{checks}</ul>")
