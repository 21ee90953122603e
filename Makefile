# mmdiff: every target installs what is missing first (tools/setup_env.sh,
# idempotent), into .venv unless MMDIFF_VENV says otherwise.
VENV ?= $(if $(MMDIFF_VENV),$(MMDIFF_VENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
DEMO_CONFIG ?= configs/demo/vpd_tiny-fpn_demo-seg.py

.PHONY: install install-datasets install-tests test test-datasets demo

install:
	bash tools/setup_env.sh

# plus the reference data pipelines' packages (albumentations, h5py)
install-datasets:
	bash tools/setup_env.sh --datasets

install-tests:
	bash tools/setup_env.sh --tests

# Two pytest processes (each test one thread), a test file per process at a
# time: on the 2-vCPU CI host 20 min 13 s on a fresh clone instead of
# 24 min 17 s on one process (docs/results.md).
test: install-tests
	$(PY) -m pytest tests -n 2 --dist loadfile -v -ra --durations=40

# The reference configs not in `make test` (pytest marker `datasets`): each
# trains 2 iterations on a fabricated miniature of its data set's layout.
test-datasets: install-tests
	$(PY) -m pytest tests -m datasets -v -ra --durations=40

# On cores other jobs share, run `OMP_NUM_THREADS=1 make demo`: on a shared
# 2-core machine the demo ran about 10x slower at 2 threads than at 1.
demo: install
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir work_dirs/demo
