# `make demo` and `make test` work on a fresh clone: they create .venv on first use,
# install everything saddles needs, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint format bench readme-demo report-screenshots clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch==2.13.0 takes the local CPU build; a looser spec would pull a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/saddles demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks docs
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks docs
	$(VENV)/bin/ruff format --check src tests benchmarks docs

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks docs

bench: $(STAMP)
	$(PY) benchmarks/topology.py

# Run the demo afresh and put what it printed into README.md.
readme-demo: $(STAMP)
	$(PY) docs/update_readme_demo.py

# Screenshots of the demo's report with headless Chromium (Debian's chromium package).
report-screenshots: $(STAMP)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(PY) docs/screenshot_report.py runs/demo/report.html

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
