"""Data parallelism on fake CPU devices (8 = 1), and the CPU split: each in its own process."""

import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import jax, numpy as np, optax
    from interp_jax import models, sharding
    from interp_jax.training import objective, steps
    assert jax.device_count() == 8, jax.devices()
    model = models.create("small_cnn", 5, widths=(4, 8), hidden=8)
    obj = objective.Objective(attack="pgd", steps=2, layers=("conv2",), weight=1.0)
    tx = optax.adam(1e-2)
    rng = np.random.default_rng(0)
    batches = [{"image": rng.uniform(size=(32, 8, 8, 3)).astype(np.float32),
                "label": rng.integers(0, 5, 32).astype(np.int32)} for _ in range(5)]

    def run(devices):
      mesh = sharding.data_mesh(devices)
      state = jax.jit(lambda k: steps.create_train_state(model, tx, (8, 8, 3), k),
                      out_shardings=sharding.replicated(mesh))(jax.random.key(0))
      step = jax.jit(steps.make_train_step(model, obj, seed=1), donate_argnums=0)
      for b in batches:
        batch = sharding.put_batch(mesh, b)
        assert len(batch["image"].sharding.device_set) == len(devices)
        state, metrics = step(state, batch)
      return jax.device_get((state.params, state.batch_stats, metrics))

    eight, one = run(jax.devices()), run(jax.devices()[:1])
    for a, b in zip(jax.tree.leaves(eight), jax.tree.leaves(one)):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    print("same parameters")
""")


def test_eight_devices_match_one_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "same parameters" in result.stdout


def test_importing_the_library_sets_nothing_and_the_command_line_splits_the_cpu():
  """No import-time side effect: the CPU split is the command line's explicit call."""
  script = textwrap.dedent("""
      import os
      before = dict(os.environ)
      import interp_jax, interp_jax.attacks, interp_jax.models, interp_jax.training.trainer
      import interp_jax.cli, interp_jax.analyze
      import jax
      assert dict(os.environ) == before
      assert not jax.config.jax_compilation_cache_dir
      print(jax.device_count())
  """)
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "INTERP_JAX_CPU_DEVICES", "JAX_COMPILATION_CACHE_DIR")}
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split() == ["1"]
  # The split also lengthens XLA's CPU collective timeout (XLA would abort on an
  # unknown flag, so a run that computes across devices proves the flag is read).
  command = ("from interp_jax import cli; import jax, os; cli.parse_flags(['x']); "
             "print(jax.device_count(), bool(jax.config.jax_compilation_cache_dir)); "
             "print(os.environ['XLA_FLAGS']); "
             "from interp_jax import sharding; import jax.numpy as jnp; m = sharding.data_mesh(); "
             "print(float(jax.jit(jnp.sum)(sharding.put_batch(m, {'a': jnp.ones(8)})['a'])))")
  result = subprocess.run([sys.executable, "-c", command], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**env, "INTERP_JAX_CPU_DEVICES": "4"})
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert lines[0].split() == ["4", "True"] and lines[2] == "8.0"
  assert lines[1] == "--xla_cpu_collective_call_terminate_timeout_seconds=3600"


DISSECT = textwrap.dedent("""
    import json, jax, numpy as np
    from interp_jax import attacks, models
    from interp_jax.analysis import dissection
    from interp_jax.data import probes
    from interp_jax.data.broden import ProbeConcepts

    class Source:
      def __init__(self):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
        self.labels = rng.integers(-1, 4, (40, 2, 8, 8)).astype(np.int32)
      def __len__(self):
        return 40
      def get(self, idx):  # the plain kind: no labels argument
        idx = np.asarray(idx)
        return {"image": self.images[idx], "labels": self.labels[idx],
                "label": (idx % 5).astype(np.int32), "index": idx}

    probe = probes.Probe(Source(), ProbeConcepts(("a", "b", "c", "d"), ("x", "x", "y", "y")), "t")
    model = models.create("small_cnn", 5, widths=(4, 8), hidden=8)
    variables = model.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))
    results, ious, _ = dissection.dissect(
        model, variables, probe, ("conv1", "conv2"), attack=attacks.AttackSpec("pgd", 0.1, steps=2),
        key=jax.random.key(1), batch_size=16, bins=64, progress=False, units_shown=0)
    print(json.dumps({"devices": jax.device_count(),
                      "ious": {k: v.tolist() for k, v in ious.items()},
                      "t": {l: results["layers"][l]["threshold"] for l in ("conv1", "conv2")}}))
""")


def test_dissection_on_eight_devices_equals_one_device():
  """Passes 2 and 3 count per device and sum (shard_map + psum): the sum must not depend
  on how many devices share the batch."""
  import json
  import numpy as np
  out = []
  for count in (8, 1):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}")
    result = subprocess.run([sys.executable, "-c", DISSECT], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out.append(json.loads(result.stdout.strip().splitlines()[-1]))
  assert [o["devices"] for o in out] == [8, 1]
  for key in out[0]["ious"]:
    np.testing.assert_allclose(out[0]["ious"][key], out[1]["ious"][key], atol=1e-6)
  for layer in out[0]["t"]:
    np.testing.assert_allclose(out[0]["t"][layer], out[1]["t"][layer], rtol=1e-5)
