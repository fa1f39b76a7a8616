"""Data parallelism on fake CPU devices (8 = 1), and the CPU split: each in its own process."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import numpy as np
import pytest

from conftest import once

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One process of eight fake CPU devices runs each computation over all eight and over a
# mesh of one of them; the tests compare what it saved.
EIGHT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np, optax
    from interp_jax import attacks, models, sharding
    from interp_jax.analysis import dissection
    from interp_jax.data import probes
    from interp_jax.data.broden import ProbeConcepts
    from interp_jax.training import objective, steps
    assert jax.device_count() == 8, jax.devices()
    out = sys.argv[1]

    # Training: five steps of PGD training with the consistent loss.
    model = models.create("small_cnn", 5, widths=(4, 8), hidden=8)
    obj = objective.Objective(attack="pgd", steps=2, layers=("conv2",), weight=1.0)
    tx = optax.adam(1e-2)
    rng = np.random.default_rng(0)
    batches = [{"image": rng.uniform(size=(32, 8, 8, 3)).astype(np.float32),
                "label": rng.integers(0, 5, 32).astype(np.int32)} for _ in range(5)]

    def train(devices):
      mesh = sharding.data_mesh(devices)
      state = jax.jit(lambda k: steps.create_train_state(model, tx, (8, 8, 3), k),
                      out_shardings=sharding.replicated(mesh))(jax.random.key(0))
      step = jax.jit(steps.make_train_step(model, obj, seed=1), donate_argnums=0)
      for b in batches:
        batch = sharding.put_batch(mesh, b)
        assert len(batch["image"].sharding.device_set) == len(devices)
        state, metrics = step(state, batch)
      return jax.device_get((state.params, state.batch_stats, metrics))

    for name, devices in (("eight", jax.devices()), ("one", jax.devices()[:1])):
      leaves = jax.tree.leaves(train(devices))
      np.savez(f"{out}/train_{name}.npz", *leaves)

    # Dissection: passes 2 and 3 count per device and sum (shard_map + psum).
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
    variables = model.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))
    data_mesh, used = sharding.data_mesh, []

    def mesh_of(devices):  # dissect's mesh: all devices, or the first alone
      used.append(data_mesh(devices))
      return used[-1]

    for name, devices in (("eight", jax.devices()), ("one", jax.devices()[:1])):
      sharding.data_mesh, used = (lambda *_, d=devices: mesh_of(d)), []
      results, ious, _ = dissection.dissect(
          model, variables, probe, ("conv1", "conv2"),
          attack=attacks.AttackSpec("pgd", 0.1, steps=2), key=jax.random.key(1),
          batch_size=16, bins=64, progress=False, units_shown=0)
      with open(f"{out}/dissect_{name}.json", "w") as f:
        json.dump({"mesh_sizes": sorted({m.size for m in used}),
                   "ious": {k: v.tolist() for k, v in ious.items()},
                   "t": {l: results.layers[l].threshold for l in ("conv1", "conv2")}}, f)
""")


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
  """The directory EIGHT saved its results in (run once, by whichever worker asks first)."""

  def run(out):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    result = subprocess.run([sys.executable, "-c", EIGHT, out], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

  return pathlib.Path(once(tmp_path_factory, "eight_devices", run))


# Both on the worker that runs EIGHT (with --dist loadgroup), rather than one waiting.
@pytest.mark.slow
@pytest.mark.xdist_group("eight_devices")
def test_eight_devices_match_one_device(eight_devices):
  """Five steps of adversarial training with the consistent loss, the batch split over
  eight devices or on one: the same parameters, BatchNorm statistics and metrics."""
  eight, one = (np.load(eight_devices / f"train_{n}.npz") for n in ("eight", "one"))
  assert len(eight.files) == len(one.files) > 0
  chex.assert_trees_all_close([eight[k] for k in eight.files], [one[k] for k in one.files],
                              rtol=2e-4, atol=2e-5)


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


@pytest.mark.slow
@pytest.mark.xdist_group("eight_devices")
def test_dissection_on_eight_devices_equals_one_device(eight_devices):
  """Passes 2 and 3 count per device and sum (shard_map + psum): the sum must not depend
  on how many devices share the batch."""
  out = [json.loads((eight_devices / f"dissect_{n}.json").read_text())
         for n in ("eight", "one")]
  assert [o["mesh_sizes"] for o in out] == [[8], [1]]
  assert set(out[0]["ious"]) == set(out[1]["ious"]) == {"conv1/real", "conv1/adversarial",
                                                         "conv2/real", "conv2/adversarial"}
  for key in out[0]["ious"]:
    np.testing.assert_allclose(out[0]["ious"][key], out[1]["ious"][key], atol=1e-6)
  for layer in out[0]["t"]:
    np.testing.assert_allclose(out[0]["t"][layer], out[1]["t"][layer], rtol=1e-5)
