# lit_rpe — every entry point. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-all lint format clean train sample sbatch experiments demo eval-grid study browser test-browser

EXP ?= demo
RES ?=
RULE ?=
ARGS ?=
NODES ?= 1
GPUS ?= 8
PARTITION ?=
TIME ?= 48:00:00
DRY ?=

help: ## List every target with one line each
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# The venv is rebuilt when pyproject.toml or the constraints change; torch is pinned to the local
# CPU build through constraints.txt so no CUDA wheels (or torchvision) are ever pulled in.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install lit_rpe with its dev extras (CPU torch pinned)

test: $(STAMP) ## Run the fast test suite (excludes tests marked slow or gpu)
	$(PY) -m pytest -q

test-all: $(STAMP) ## Run every test, the slow ones included
	$(PY) -m pytest -q -m 'not gpu'

lint: $(STAMP) ## Check style with ruff
	$(VENV)/bin/ruff check lit_rpe tests bench data
	$(VENV)/bin/ruff format --check lit_rpe tests bench data

format: $(STAMP) ## Format the code with ruff
	$(VENV)/bin/ruff check --fix lit_rpe tests bench data
	$(VENV)/bin/ruff format lit_rpe tests bench data

experiments: $(STAMP) ## List the runnable experiments
	@$(PY) -c "from lit_rpe.training.experiments import list_experiments; print('\n'.join(list_experiments()))"

# Unknown experiment names fail here with the list of valid ones, before anything starts.
check-exp = @test -f experiments/$(EXP).yaml || { echo "unknown experiment '$(EXP)'; valid:"; \
	$(PY) -c "from lit_rpe.training.experiments import list_experiments; print(' '.join(list_experiments()))"; exit 2; }

train: $(STAMP) ## Train EXP (resumes its run directory by itself): make train EXP=rpe2d_256 [ARGS=...]
	$(check-exp)
	$(PY) -m lit_rpe fit --config experiments/$(EXP).yaml $(ARGS)

sample: $(STAMP) ## Sample EXP's last checkpoint: make sample EXP=demo RES=64 RULE=rpe2d_even
	$(check-exp)
	$(PY) -m lit_rpe sample --config experiments/$(EXP).yaml $(if $(RES),--resolution $(RES)) $(if $(RULE),--rule $(RULE)) $(ARGS)

sbatch: $(STAMP) ## Render + submit EXP on SLURM: make sbatch EXP=rpe2d_256 NODES=4 GPUS=8 [PARTITION= TIME= DRY=1]
	$(check-exp)
	$(PY) -m lit_rpe.training.slurm $(EXP) --nodes $(NODES) --gpus $(GPUS) --time $(TIME) $(if $(PARTITION),--partition $(PARTITION)) $(if $(DRY),--dry) --args="$(ARGS)"

demo: $(STAMP) ## The main command: photo set, train the CPU demo, sample it, its eval grid table and report.html
	$(PY) data/build_photos.py --out data/photos --no-progress
	$(PY) -m lit_rpe fit --config experiments/demo.yaml $(ARGS)
	$(PY) -m lit_rpe.demo --config experiments/demo.yaml
	$(PY) -m lit_rpe.eval.grid experiments/grid_demo.yaml --print

GRID ?= experiments/grid_demo.yaml
eval-grid: $(STAMP) ## Evaluate checkpoints x rules x resolutions (resumable): make eval-grid GRID=experiments/grid_256.yaml
	@test -f "$(GRID)" || { echo "grid file not found: $(GRID); shipped: $$(ls experiments/grid_*.yaml experiments/*/grid.yaml | tr '\n' ' ')"; exit 2; }
	$(PY) -m lit_rpe.eval.grid $(GRID) --print

study: $(STAMP) ## The CPU study: shapes set, 6 strategies x 3 seeds, eval grids with intervals, docs/RESULTS.md (<= 2 h, resumable) [ARGS="--sets shapes photos"]
	$(PY) data/build_photos.py --out data/photos --no-progress
	$(PY) data/build_shapes.py --out data/shapes --no-progress
	$(PY) -m lit_rpe.study $(ARGS)

# Root (or sudo) for apt-get; selenium is pinned in pyproject's `browser` extra.
browser: $(STAMP) ## Install headless Chromium + chromedriver (apt) and selenium for the report's browser tests
	apt-get update && apt-get install -y chromium chromium-driver
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,browser]'

test-browser: $(STAMP) ## Check report.html in headless Chromium (after make browser; the demo's too after make demo)
	$(PY) -m pytest -q -m browser tests/eval/grid/test_eval_report_browser.py

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

# ---- data: the embedded photo and shapes sets, shard conversion, precomputed latents, loader benchmark ----
.PHONY: photos shapes shards latents bench-loader

photos: $(STAMP) ## Build the embedded photo set into data/photos (offline, idempotent)
	$(PY) data/build_photos.py --out data/photos

shapes: $(STAMP) ## Build the shapes data set into data/shapes (generated, offline, idempotent)
	$(PY) data/build_shapes.py --out data/shapes

shards: $(STAMP) ## Image tree -> shards: make shards SRC=<tree> OUT=<dir> [VAL_LABELS=<file>]
	@test -n "$(SRC)" -a -n "$(OUT)" || { echo "usage: make shards SRC=<image tree> OUT=<shard folder> [VAL_LABELS=<label file>]"; exit 2; }
	$(PY) -m lit_rpe.prep.make_shards "$(SRC)" --out "$(OUT)" $(if $(VAL_LABELS),--val-labels "$(VAL_LABELS)")

latents: $(STAMP) ## Precompute VAE latents: make latents SHARDS=<in> OUT=<dir> VAE=<folder> [RES= ZOOM=]
	@test -n "$(SHARDS)" -a -n "$(OUT)" -a -n "$(VAE)" || { echo "usage: make latents SHARDS=<image shards> OUT=<folder> VAE=<local AutoencoderKL folder> [RES=256] [ZOOM=1.0]"; exit 2; }
	$(PY) -m lit_rpe.prep.precompute_latents --shards "$(SHARDS)" --out "$(OUT)" --vae "$(VAE)" --resolution $(or $(RES),256) --zoom $(or $(ZOOM),1.0)

bench-loader: $(STAMP) ## Loader throughput: streaming shards vs naive decode-then-resize; local vs loopback HTTP
	$(PY) -m bench.cpu.loader $(ARGS)

# ---- performance benchmarks (issue 8): each prints its configuration and a markdown table ----
.PHONY: bench bench-train bench-sampling bench-memory bench-gpu gpu-check bench-reference bench-study

bench: $(STAMP) bench-train bench-sampling bench-memory ## The CPU benchmark set: training step, sampling per rule, memory

bench-train: $(STAMP) ## Training images/s for sincos, rope, rpe2d at 64/256/1024 tokens, native precision [ARGS=--dtypes fp32 bf16]
	$(PY) -m bench.cpu.train_step $(ARGS)

bench-sampling: $(STAMP) ## Sampling cost per step of every inference rule vs extrapolate, at 2x and 4x [ARGS=]
	$(PY) -m bench.cpu.sampling $(ARGS)

bench-memory: $(STAMP) ## Peak memory of a training and a sampling step, 256 to 4096 tokens [ARGS=]
	$(PY) -m bench.cpu.memory $(ARGS)

bench-study: $(STAMP) ## make study's unit costs here vs AVX2-only fp32, and a finished study's projected AVX2 time [ARGS=]
	$(PY) -m bench.cpu.study_cost $(ARGS)

bench-gpu: $(STAMP) ## DiT-XL/2 images/s and MFU at 256 and 512 px in bf16 (needs CUDA) [ARGS=]
	$(PY) -m bench.gpu.throughput $(ARGS)

# No venv dependency: the GPU machine has no registry. It uses $(PYTHON) (or .venv's python where
# one exists) and installs the wheels carried in .whl/ itself (bench/prepare_gpu_wheels.sh).
gpu-check: ## GPU validation, ~6 min on one H200: make gpu-check OUT=<dir> [SMOKE=1: CPU toy run] [ONLY=stage,...]
	@test -n "$(OUT)" || { echo "usage: make gpu-check OUT=<folder> [SMOKE=1] [ONLY=stage,stage]"; exit 2; }
	PYTHON=$(if $(wildcard $(PY)),$(PY),$(PYTHON)) bash bench/gpu_check.sh "$(OUT)" $(if $(SMOKE),--smoke) $(if $(ONLY),--only $(ONLY))
# timm is what the reference's models.py imports; --no-deps: its torchvision requirement would
# pull a CUDA build (bench/cpu/reference_dit.py stands a placeholder in for torchvision instead).
bench-reference: $(STAMP) ## Our DiT-S/2 training step vs facebookresearch/DiT's: make bench-reference DIT=<local clone> [ARGS=--compile]
	@test -n "$(DIT)" || { echo "usage: make bench-reference DIT=<local clone of facebookresearch/DiT> [ARGS=--compile]"; exit 2; }
	@$(PY) -c "import timm" 2>/dev/null || $(PY) -m pip install --quiet --no-deps -c constraints.txt timm
	$(PY) -m bench.cpu.reference_dit --dit-repo "$(DIT)" $(ARGS)
