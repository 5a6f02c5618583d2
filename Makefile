# The whole set-up is `make demo` or `make test`: both run `install` first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STRATA := $(BIN)/strata

.PHONY: install demo test lint bench clean

$(BIN)/python:
	@tools/ensure-python-venv.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The stamp is remade whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
	@tools/install-postgres.sh

demo: install
	$(STRATA) db start
	$(STRATA) migrate
	$(STRATA) seed --if-empty
	$(STRATA) status

lint: install
	$(BIN)/sqlfluff lint sql migrations

test: install lint
	$(BIN)/python -m pytest

bench: install
	$(STRATA) bench

# db remove also deletes the cluster's directories outside .strata/ (/var/tmp, /tmp as root).
clean:
	-[ -x $(STRATA) ] && $(STRATA) db remove --yes
	rm -rf .strata $(VENV) cli/*.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
