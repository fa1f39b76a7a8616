"""python -m interp_jax.select --workdir=DIR [--config=configs/concepts.py] [--analysis.k=50 ...]

Chooses the consistent loss on the validation split: trains standard, adv
and every candidate of config.selection (lambda x form x layers), analyses
each on validation images and applies the rule declared in the config
(reproduction/selection.py). Writes DIR/selection.json:
    {"layer", "split": "validation", "grid": config.selection, "rule": str,
     "analysis": {...}, "standard": RUN, "adv": RUN,
     "candidates": [{"name", "form", "weight", "layers", "eligible", "reasons", **RUN}],
     "choice": {"name", "form", "weight", "layers"} or null}
    RUN = {"workdir", "clean", "attacked", "adversarial_consistency", "real_consistency",
           "included"}, all on validation images,
and DIR/selection.html. Finished runs and analyses in DIR are reused.
"""

from absl import app, flags

from interp_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where the candidate runs and selection.json go.")
cli.define_config_file("config", "configs/concepts.py", "Training config file.")


def _default_analysis():
  from interp_jax.analysis import default_config
  return default_config()


cli.define_config_dict("analysis", _default_analysis(), "Analysis settings of the candidates.")


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  config = cli.require(FLAGS, "config")
  with cli.user_errors():
    from interp_jax.reproduction.selection import select
    out = select(config, FLAGS.workdir, FLAGS.analysis)
  fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
  print(f"\n{'run':<24}{'clean':>7}{'attacked':>9}  adversarial consistency at {out['layer']}"
        " (validation)")
  for name, m in [("standard", out["standard"]), ("adv", out["adv"])] + [
      (c["name"], c) for c in out["candidates"]]:
    note = "" if name in ("standard", "adv") else (
        "  eligible" if m["eligible"] else "  " + "; ".join(m["reasons"]))
    print(f"{name:<24}{fmt(m['clean']):>7}{fmt(m['attacked']):>9}  "
          f"{fmt(m['adversarial_consistency'])}{note}")
  choice = out["choice"]
  print(f"\nchosen: {choice['name'] if choice else 'none (no candidate meets the rule)'}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
