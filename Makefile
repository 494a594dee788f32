# Two entry points: `make repro` (set up + run the pipeline) and `make test` (set up + run the tests).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared

# Offline mirrors: when ../shared is beside the checkout (CI, this lab) use its assets, real photos and
# Keras weights; a user with internet needs none of this (files are downloaded and hash-checked).
ifneq ($(wildcard $(SHARED)/assets),)
export SIM2REAL_ASSET_MIRROR ?= $(abspath $(SHARED)/assets)
endif
ifneq ($(wildcard $(SHARED)/assets/keras/models),)
export KERAS_HOME ?= $(abspath .keras_home)
endif
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Stages run `python -m stages.<name>`: the venv's python must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test lint format params dag clean-env

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed .keras_home/models data/real_photos ## create the environment and the offline links

# Keras writes keras.json into KERAS_HOME, so KERAS_HOME is a writable folder whose models/ links to the mirror.
.keras_home/models:
	@if [ -d "$(SHARED)/assets/keras/models" ]; then mkdir -p .keras_home && ln -sfn "$(abspath $(SHARED)/assets/keras/models)" $@; fi

# The pipeline reads real photos from data/real_photos (param real.photo_dir). Beside ../shared it links
# the real-dev set there; put your own photos there otherwise (see README).
data/real_photos:
	@if [ -d "$(SHARED)/data/real-dev" ]; then mkdir -p data && ln -sfn "$(abspath $(SHARED)/data/real-dev)" $@; \
	else echo "No $@: put labelled photos there (README, 'Real photos') before 'make repro'."; fi

repro: setup ## run the whole pipeline
	$(BIN)/dvc repro

test: setup ## run the test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format:
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

params: $(BIN)/.installed ## recompose params.yaml from conf/ (what `dvc exp run` does)
	$(BIN)/python -m sim2real_faces.compose

dag:
	$(BIN)/dvc dag --md
