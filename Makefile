# psp_jax: the commands of the README. Everything runs in a local virtual environment (.venv)
# created on first use from setup.py, so they work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -n 2 --dist loadfile

DEMO_DIR ?= runs/demo
REFINE_DEMO_DIR ?= runs/cascade_demo

.PHONY: install install-dev demo demo-refine quickstart test bench clean

$(VENV)/.base: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e .
	touch $@

# Test extras and the optional PyTorch (CPU) used only to test checkpoint conversion.
$(VENV)/.dev: $(VENV)/.base
	$(PY) -m pip install -q -e ".[test,convert]"
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

## The main job on its embedded default: train the `demo` config on the synthetic scenes
## (prepared on first use), evaluate its best checkpoint, write $(DEMO_DIR)/report.md with the
## metrics and an example prediction PNG. About 4 minutes on 2 CPU cores; rerunning resumes.
demo: install
	$(PY) -m psp_jax train --config configs/pspnet.py:demo --workdir $(DEMO_DIR)
	$(PY) -m psp_jax evaluate --config configs/pspnet.py:demo --workdir $(DEMO_DIR) --checkpoint best
	$(PY) experiments/demo_report.py --workdir $(DEMO_DIR)

## CascadePSP on its embedded default: train configs/cascadepsp.py:demo (object masks of the
## synthetic scenes with perturbed inputs), then report IoU and mBA before and after refining
## the held-out scenes (written to $(REFINE_DEMO_DIR)/eval/). About 14 minutes on 2 CPU cores
## (an idle AMD EPYC with AVX-512, 2026-12-02; see the README).
## On real photographs: configs/cascadepsp.py:demo_real (CamVid objects; see the README).
demo-refine: install
	$(PY) -m psp_jax train --config configs/cascadepsp.py:demo --workdir $(REFINE_DEMO_DIR)
	$(PY) -m psp_jax evaluate --config configs/cascadepsp.py:demo --workdir $(REFINE_DEMO_DIR) --checkpoint best

## A one-minute look at the train step alone (no data pipeline, no checkpoints).
quickstart: install
	$(PY) -m psp_jax.train.quickstart

## The test suite (8 simulated CPU devices; a few minutes on 2 cores).
test: install-dev
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

## Timings for the README: PSPNet-50 forward at 473x473 and a train step on 8 simulated devices.
bench: install
	$(PY) experiments/benchmark_core.py forward
	$(PY) experiments/benchmark_core.py train_step

clean:
	rm -rf $(VENV) .pytest_cache
