"""python -m interp_jax.train --config=configs/concepts.py:standard --workdir=DIR

Trains the configured model; rerun the same command to resume. Override any
config field with --config.FIELD=VALUE. The loop lives in training/trainer.py.
"""


from absl import app, flags

from interp_jax import cli

FLAGS = flags.FLAGS
cli.define_config_file("config", None, "Config file, optionally :variant.")
flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
flags.DEFINE_bool("distributed", False, "Multi-host: call jax.distributed.initialize() "
                  "first (launch/tpu_vm.sh runs one such process per host).")


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  config = cli.require(FLAGS, "config")
  if FLAGS.distributed:
    import jax
    jax.distributed.initialize()
  from interp_jax.training import trainer  # after flag parsing: a bad flag fails fast
  with cli.user_errors():
    final = trainer.train_and_evaluate(config, FLAGS.workdir)
  print("final: " + ", ".join(f"{k}={v:.4g}" for k, v in final.items()))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
