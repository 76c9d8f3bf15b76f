# edgeprune — `make demo` and `make test` work on a fresh machine (they run `setup` first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned to the build this project is tested with (served from local disk here)
TORCH  ?= torch==2.14.1 torchvision==0.29.1
RUNS   := runs

.PHONY: setup test demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q tests

demo: setup
	$(BIN)/edgeprune info torchvision:resnet18
	$(BIN)/edgeprune prune torchvision:resnet18 --method l1 --budget flops=0.5 --align 16 --out $(RUNS)/demo/prune
	@echo "report: $(RUNS)/demo/prune/report.json"

clean:
	rm -rf $(RUNS) .pytest_cache
