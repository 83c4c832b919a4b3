# The two commands a fresh clone needs: `make demo` and `make test`.
# Each creates .venv and installs the project into it on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Where Fashion-MNIST lives on the machines that build this project (../shared/data beside the
# checkout, or the workplace's /work/shared/data for a clone elsewhere); otherwise data/, where
# torchvision downloads it (see README). Tests never download: without the files they skip.
export FASHION_MNIST_ROOT ?= $(firstword $(foreach d,$(abspath ../shared/data) /work/shared/data,$(if $(wildcard $(d)/FashionMNIST/raw),$(d))) data)

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[worker,embedded,test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m producer.demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m producer.bench

clean:
	rm -rf $(VENV) runs bench-results
