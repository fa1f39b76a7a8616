#!/usr/bin/env bash
# Multi-host TPU VM (pod slice): run the same command on every host, for example
#   gcloud compute tpus tpu-vm ssh NAME --zone=ZONE --worker=all --command \
#     "cd interp_jax && launch/tpu_vm.sh configs/imagenet_resnet50.py:adv_consistent \
#        gs://BUCKET/runs/r50 --config.dataset.data_dir=gs://BUCKET/tfds"
# Each host runs one process; jax.distributed.initialize() finds the others from
# the TPU metadata, and each process reads its own slice of every global batch.
# Relative paths are read from the checkout's root (the script changes to it).
#
# INTERP_JAX_CPU_TINY=1 runs the same training on this machine's CPU at tiny sizes, as
# tests/test_launch.py does: one process (no TPU metadata to find others by, so no
# jax.distributed; tests/test_multihost.py runs two processes), nothing installed (the
# checkout's .venv must exist), a local WORKDIR, and the sizes of launch/cpu_tiny.flags
# (flags given after WORKDIR win).
set -euo pipefail
config=${1:?config file}
workdir=${2:?workdir (a gs:// path shared by all hosts)}
shift 2
cd "$(dirname "$0")/.."
if [ "${INTERP_JAX_CPU_TINY:-0}" = 1 ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "INTERP_JAX_CPU_TINY=1 uses the checkout's .venv; create it first (make test)" >&2
    exit 2
  fi
  tiny=()
  while IFS= read -r flag; do tiny+=("$flag"); done < launch/cpu_tiny.flags
  export JAX_PLATFORMS=cpu
  exec .venv/bin/python -m interp_jax.train --config="$config" --workdir="$workdir" \
    "${tiny[@]}" "$@"
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e . 'jax[tpu]' gcsfs
fi
exec .venv/bin/python -m interp_jax.train --config="$config" --workdir="$workdir" \
  --distributed "$@"
