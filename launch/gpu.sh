#!/usr/bin/env bash
# Train (and resume) on one GPU. Usage: launch/gpu.sh CONFIG[:VARIANT] WORKDIR [--config.FIELD=VALUE ...]
# Example: launch/gpu.sh configs/cifar10_resnet18.py:adv_consistent runs/c10 \
#            --config.dataset.data_dir=$HOME/tensorflow_datasets
# The device check of a lent GPU (a table and a JSON; interp_jax/bench/device_check.py;
# with torch and torchattacks installed, `pip install -e '.[torch]'`, their figures beside):
#   launch/gpu.sh device [--device_size=full --device_out=runs/device_check_gpu.json]
# Relative paths are read from the checkout's root (the script changes to it).
#
# INTERP_JAX_CPU_TINY=1 runs the same commands on the CPU at tiny sizes, as
# tests/test_launch.py does: nothing is installed (the checkout's .venv must
# exist), no GPU is asked for, training takes the sizes of launch/cpu_tiny.flags
# (20 steps of 32 images; flags given after WORKDIR win) and the device check its
# tiny size.
set -euo pipefail
cd "$(dirname "$0")/.."
tiny=()
if [ "${INTERP_JAX_CPU_TINY:-0}" = 1 ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "INTERP_JAX_CPU_TINY=1 uses the checkout's .venv; create it first (make test)" >&2
    exit 2
  fi
  export JAX_PLATFORMS=cpu
  while IFS= read -r flag; do tiny+=("$flag"); done < launch/cpu_tiny.flags
elif [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e . 'jax[cuda12]'
fi
# Let XLA take GPU memory as it needs it, so an analysis (or torch, the device check's
# peer) can share the GPU.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if [ "${INTERP_JAX_CPU_TINY:-0}" != 1 ]; then
  .venv/bin/python -c "import jax; assert jax.default_backend() == 'gpu', jax.devices()"
fi
if [ "${1:-}" = device ]; then
  shift
  size=()
  if [ "${INTERP_JAX_CPU_TINY:-0}" = 1 ]; then size=(--device_size=tiny); fi
  exec .venv/bin/python -m interp_jax.bench device ${size[@]+"${size[@]}"} "$@"
fi
config=${1:?config file, e.g. configs/concepts.py:adv_consistent}
workdir=${2:?workdir}
shift 2
exec .venv/bin/python -m interp_jax.train --config="$config" --workdir="$workdir" \
  ${tiny[@]+"${tiny[@]}"} "$@"
