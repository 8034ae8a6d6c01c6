# Two commands do all set-up on a fresh clone: `make test` and `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The install is redone only when pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell $(PYTHON) -c "import hashlib;print(hashlib.sha256(open('pyproject.toml','rb').read()).hexdigest()[:16])")
DEMO_DATA ?= data/synthetic

.PHONY: install test demo accuracy lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the build this machine carries on disk; the rest resolves from PyPI.
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# The real-file tests make their videos with Debian's ffmpeg program: install it when missing (as root).
test: install
	command -v ffmpeg >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq ffmpeg; } \
		|| { echo "make test needs the ffmpeg program: apt-get install ffmpeg (as root)"; exit 1; }
	$(BIN)/python -m pytest -q tests

lint: install
	$(BIN)/ruff check lightning_multigrid tests benchmarks examples
	$(BIN)/mypy lightning_multigrid

# The fastest data path by default: generate the videos, convert them once to frame folders
# (lightning-multigrid prepare, into $(DEMO_DATA)_frames), train both runs on those.
# `make demo DEMO_SEEDS=3` repeats both runs over 3 seeds and reports the mean accuracy difference.
DEMO_SEEDS ?= 1
demo: install
	$(BIN)/python benchmarks/speedup.py --data-dir $(DEMO_DATA) --seeds $(DEMO_SEEDS)

# Does multigrid keep the baseline's accuracy? 5 variants x 3 seeds on the harder synthetic task
# (benchmarks/accuracy.py; about 35-60 min on 2 idle cores): benchmarks/results/accuracy.json + .png.
# `make accuracy ACCURACY_ARGS=--sweep` maps the regime instead (accuracy_sweep.json).
ACCURACY_ARGS ?=
accuracy: install
	$(BIN)/python benchmarks/accuracy.py $(ACCURACY_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
