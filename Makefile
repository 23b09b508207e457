# Every target sets itself up: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The exact versions every make target (and CI) installs; `make lock` regenerates it.
LOCK   := requirements.lock
# The extras `make install` and `make lock` install (tests/test_lock.py reads this line).
EXTRAS := dev

.PHONY: install lock test test-fast lint proto docs demo serve bench default-model default-model-shipped clean

install: $(STAMP)

# Re-install only when the project's dependencies or their pinned versions change. setuptools'
# notice on every editable install of a flat layout ("Editable installation. Please be careful
# with folders ...") asks nothing of the user: filtered so the output stays clean.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' \
		$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[$(EXTRAS)]'
	touch $(STAMP)

# Move every pin to the newest version pyproject.toml allows (a fresh virtualenv, no constraints),
# then `make test` and commit requirements.lock.
lock:
	PYTHONWARNINGS='ignore:Editable installation' \
		$(PYTHON) scripts/update_lock.py --extras $(EXTRAS) --output $(LOCK)

proto: install
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. \
		$$(find proto -name '*.proto' | sort)

# Generated reference: the serve flag tables from their declarations (streaming/server/serve_config.py).
docs: install
	$(BIN)/python -m streaming.server.serve_cli --markdown docs/serve-flags.md

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy streaming client camera_tools default_model_data

# The whole suite (CI runs this): the gates first, then every tier.
test: lint
	$(BIN)/python -m pytest -q

# The unit tier: no TensorFlow model, no servers of outside programs (under a minute).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

demo: install
	$(BIN)/python scripts/run_demo.py

# Retrain the embedded broadcast monitor (streaming/default_model/) with `stream-classify train` on
# generated frames (about 25 min on 2 quiet CPU cores, 52 min on a busy one), then score it on the
# held-out sets (model card).
default-model: install
	$(BIN)/python -m default_model_data.train_default_model
	$(BIN)/python -m default_model_data.evaluate_default_model --broadcast-seeds 404,505,606 --json default_model_data/evaluation_report.json

# The shipped model as it was made: the previous model (commit b3c3d30's) fine-tuned on this
# generator by `stream-classify train --base` (streaming/default_model/MODEL_CARD.md, "Training").
SHIPPED_BASE := b3c3d30
default-model-shipped: install
	git show $(SHIPPED_BASE):streaming/default_model/broadcast_monitor.keras > $(VENV)/base-$(SHIPPED_BASE).keras
	$(BIN)/python -m default_model_data.train_default_model --per-class 5000 --epochs 8 --base $(VENV)/base-$(SHIPPED_BASE).keras
	$(BIN)/python -m default_model_data.evaluate_default_model --broadcast-seeds 404,505,606 --json default_model_data/evaluation_report.json

serve: install
	$(BIN)/stream-classify serve

bench: install
	$(BIN)/stream-classify bench

clean:
	rm -rf $(VENV) demo-output build *.egg-info .pytest_cache
