# mmdiff: every target installs what is missing first (tools/setup_env.sh,
# idempotent), into .venv unless MMDIFF_VENV says otherwise.
VENV ?= $(if $(MMDIFF_VENV),$(MMDIFF_VENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
DEMO_CONFIG ?= configs/demo/vpd_tiny-fpn_demo-seg.py

.PHONY: install install-tests test demo

install:
	bash tools/setup_env.sh

install-tests:
	bash tools/setup_env.sh --tests

test: install-tests
	$(PY) -m pytest tests -v -ra --durations=15

demo: install
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir work_dirs/demo
