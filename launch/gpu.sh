#!/usr/bin/env bash
# Train (and resume) on one GPU. Usage: launch/gpu.sh CONFIG[:VARIANT] WORKDIR [--config.FIELD=VALUE ...]
# Example: launch/gpu.sh configs/cifar10_resnet18.py:adv_consistent runs/c10 \
#            --config.dataset.data_dir=$HOME/tensorflow_datasets
set -euo pipefail
config=${1:?config file, e.g. configs/concepts.py:adv_consistent}
workdir=${2:?workdir}
shift 2
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e . 'jax[cuda12]'
fi
# Let XLA take GPU memory as it needs it, so an analysis can share the GPU.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
.venv/bin/python -c "import jax; assert jax.default_backend() == 'gpu', jax.devices()"
exec .venv/bin/python -m interp_jax.train --config="$config" --workdir="$workdir" "$@"
