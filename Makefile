# Two commands on a fresh Debian machine with Python 3.11+:
#   make run    set up .venv and start the app
#   make test   set up .venv and run the tests (offscreen, no display needed)
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint setup bench clean

$(STAMP): pyproject.toml scripts/check_system.py
	$(PYTHON) scripts/check_system.py --python
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	$(VENV)/bin/python scripts/check_system.py --qt
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/python main.py

lint: $(STAMP)
	$(VENV)/bin/ruff check app tests bench scripts main.py
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# Two pytest workers (pytest-xdist); --dist loadfile keeps each file in one worker so its
# module-scoped fixtures are built once.
test: $(STAMP) lint
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(VENV)/bin/python bench/registry_bench.py

clean:
	rm -rf $(VENV)
