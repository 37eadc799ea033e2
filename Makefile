# The two commands in the README:
#   make demo   set everything up (llama.cpp build for this CPU, specllama, data, default models)
#               and answer a question about a ~4K-token document with SpecPC
#   make test   set up if needed, then run the test suite
PYTHON ?= python3
SPECLLAMA = $(PYTHON) -m specllama
DEMO_DOC = .specllama-build/demo.txt

.PHONY: install demo test unit

install:
	$(PYTHON) scripts/install.py

demo: install
	$(PYTHON) -m specllama.eval.haystack --words 3200 --depth 0.4 > $(DEMO_DOC)
	$(SPECLLAMA) run --method specpc --keep 0.25 -n 32 -f $(DEMO_DOC) \
	  --question "What is the special magic number for the blue falcon? Answer with the number only."

test: install
	SPECLLAMA_REQUIRE_MODELS=1 $(PYTHON) -m pytest

unit:
	$(PYTHON) -m pytest tests/unit -q
