# The two commands a fresh clone needs: `make demo` and `make test` (and `make bench`).
# Each creates .venv and installs the project into it on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Fashion-MNIST: $FASHION_MNIST_ROOT if set; else ../shared/data beside the checkout, where this
# project's build machines keep it; else data/, where `python -m ml.train` has torchvision
# download it. Tests never download: without the files they skip, and say so.
export FASHION_MNIST_ROOT ?= $(if $(wildcard ../shared/data/FashionMNIST/raw),$(abspath ../shared/data),data)

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[worker,embedded,test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m devtools.demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m devtools.bench

clean:
	rm -rf $(VENV) runs bench-results
