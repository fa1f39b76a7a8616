# Each target creates .venv on first use, so a fresh clone needs nothing but python3 >= 3.11.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo reproduce reproduce-mnist test bench clean

# The commands need the package alone; the tests also need the [dev] extras (pytest,
# torch for the weight imports, tensorboard), a download the demo does not wait for.
# uv resolves as pip does and downloads in parallel: a set-up several times faster.
UV := $(BIN)/python -m uv pip install -q --python $(BIN)/python
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv
	$(UV) -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(UV) -e '.[dev]'
	touch $(DEV_STAMP)

# One seed of the three variants (configs/concepts.py:demo says what it leaves out to
# fit its time): shows the pipeline, decides nothing. `make reproduce` is the protocol.
demo: $(STAMP)
	$(BIN)/python -m interp_jax.reproduce --config=configs/concepts.py:demo --workdir=runs/demo

# Protocol 2 with configs/concepts.py's grid v2 (declared after protocol 1's results on
# concept_shapes were seen; the config's docstring says how to run protocol 1 as it ran).
reproduce: $(STAMP)
	$(BIN)/python -m interp_jax.reproduce --config=configs/concepts.py --workdir=runs/reproduce

# The protocol on real digits (configs/mnist.py), from MNIST's four IDX files (gzipped or
# not, or torchvision's MNIST/raw): protocol 2, declared before any real-digit test number.
MNIST_DIR ?= ../shared/data/mnist
reproduce-mnist: $(STAMP)
	$(BIN)/python -m interp_jax.reproduce --config=configs/mnist.py --workdir=runs/mnist \
	    --config.dataset.name=idx --config.dataset.data_dir=$(MNIST_DIR)

# loadgroup: a test at a time to whichever worker is free (the slow ones first, see
# tests/conftest.py), and the tests of one xdist_group together; the 25 slowest are listed.
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=25 tests

bench: $(STAMP)
	$(BIN)/python -m interp_jax.bench all

clean:
	rm -rf $(VENV) runs
