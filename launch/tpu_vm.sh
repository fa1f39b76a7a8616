#!/usr/bin/env bash
# Multi-host TPU VM (pod slice): run the same command on every host, for example
#   gcloud compute tpus tpu-vm ssh NAME --zone=ZONE --worker=all --command \
#     "cd interp_jax && launch/tpu_vm.sh configs/imagenet_resnet50.py:adv_consistent \
#        gs://BUCKET/runs/r50 --config.dataset.data_dir=gs://BUCKET/tfds"
# Each host runs one process; jax.distributed.initialize() finds the others from
# the TPU metadata, and each process reads its own slice of every global batch.
set -euo pipefail
config=${1:?config file}
workdir=${2:?workdir (a gs:// path shared by all hosts)}
shift 2
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e . 'jax[tpu]' gcsfs
fi
exec .venv/bin/python -m interp_jax.train --config="$config" --workdir="$workdir" \
  --distributed "$@"
