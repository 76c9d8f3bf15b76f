# edgeprune — `make demo` and `make test` work on a fresh machine (they run `setup` first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned to the build this project is tested with (served from local disk here)
TORCH  ?= torch==2.14.1 torchvision==0.29.1
RUNS   ?= runs

# What the device targets prune, and how
MODEL  ?= torchvision:resnet18
NAME   ?= resnet18
METHOD ?= l1
BUDGET ?= flops=0.5
# ...and the speed it must buy on the device: pruned median <= MAX_RATIO x dense median, both
# measured in the same run (a target's own budgets.max_ratio, where it has one, is overridden)
MAX_RATIO ?= 0.9

DEVICES := $(basename $(notdir $(wildcard targets/*.toml)))

FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

.PHONY: setup test demo clean ci-latency devices fashion-mnist $(DEVICES)

setup: $(STAMP)

# The real Fashion-MNIST (Debian's dataset-fashion-mnist) that the demo trains on (the tests use
# it where installed, else a tiny fake); installed with apt-get where we may (root), otherwise
# the command to run is printed.
fashion-mnist:
	@test -f $(FMNIST) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q dataset-fashion-mnist || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; \
	  else \
	    echo "Fashion-MNIST is missing ($(FMNIST)); install it: sudo apt-get install dataset-fashion-mnist" >&2; exit 1; \
	  fi; }

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[all,dev]'
	$(BIN)/pip install -q --no-deps foolbox  # only its bundled ImageNet sample images (calibration/foolbox-imagenet.toml)
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q tests

devices:
	@echo $(DEVICES)

# One target per device (targets/NAME.toml): prune with the device's alignment, export
# dense and pruned, time both interleaved on the device (A B A B: noise hits both alike), and
# check the budgets (exit 1 if broken): the
# target's absolute latency_ms for NAME where it has one, and pruned/dense <= MAX_RATIO.
#   make x86-ort-1t MODEL=torchvision:mobilenet_v2 NAME=mobilenet_v2 BUDGET=flops=0.5
$(DEVICES): setup
	$(eval OUT := $(RUNS)/$@)
	$(eval FILE := $(if $(findstring openvino,$@),model.xml,model.onnx))
	$(BIN)/edgeprune prune $(MODEL) --method $(METHOD) --budget $(BUDGET) --align auto --target $@ --out $(OUT)/prune
	$(BIN)/edgeprune export $(MODEL) --batch 1 --out $(OUT)/dense
	$(BIN)/edgeprune export $(OUT)/prune --batch 1 --out $(OUT)/pruned
	$(BIN)/edgeprune compare $(OUT)/dense/$(FILE) $(OUT)/pruned/$(FILE) --target $@ --name-a $(NAME)-dense --name-b $(NAME) \
	  --no-progress --json $(OUT)/compare.json --report-a $(OUT)/dense.profile.json --report-b $(OUT)/pruned.profile.json
	$(BIN)/edgeprune check $(OUT)/pruned.profile.json --target $@ --baseline $(OUT)/dense.profile.json --max-ratio $(MAX_RATIO) --json $(OUT)/check.json

# CI's latency gate: relative budget only (pruned median <= max_ratio x dense median,
# both measured in this job on this machine).
ci-latency: ci-ort

# The built-in pipeline (examples/demo.toml): train, prune (DTP), export, quantize, evaluate,
# profile on two targets, check budgets; writes $(RUNS)/demo/report.md, report.json (+ report.png
# with matplotlib). A re-run skips the stages whose inputs are unchanged.
demo: setup fashion-mnist
	$(BIN)/edgeprune info edgeprune:resnet20
	$(BIN)/edgeprune pipeline examples/demo.toml --out $(RUNS)/demo --no-progress
	@echo
	@cat $(RUNS)/demo/report.md

clean:
	rm -rf $(RUNS) .pytest_cache
