# The README's two commands: `make run` and `make test`. Both install what a fresh machine
# lacks first (apt: libclang-dev, clang; pip: cmake >= 3.28 — needed by the model crates).
CARGO ?= cargo
SPEC ?= examples/lgbm-spy.toml

# The real Optuna (and its dashboard) that the tests read our exports with, pinned.
TEST_VENV ?= .venv-test

.PHONY: run test setup build lint bench bench-search bench-serve check-cuda soak fuzz

setup:
	@bash scripts/setup.sh

$(TEST_VENV)/.installed: tests/python/requirements.txt
	test -x $(TEST_VENV)/bin/python || python3 -m venv $(TEST_VENV)
	$(TEST_VENV)/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

build: setup
	$(CARGO) build --release --bin mlt-cluster

run: build
	rm -rf ./mlt-data/demo
	./target/release/mlt-cluster run $(SPEC) --data-dir ./mlt-data/demo

test: setup $(TEST_VENV)/.installed
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	MLT_TEST_PYTHON=$(abspath $(TEST_VENV))/bin/python $(CARGO) test --workspace --all-targets
# A few seconds of coverage-guided fuzzing per target where the nightly toolchain is (it is
# not downloadable here): the seeds are replayed on stable above either way.
	@if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then \
		$(MAKE) fuzz FUZZ_SECONDS=5; \
	else \
		echo "no nightly toolchain: coverage-guided fuzzing skipped (make fuzz)"; \
	fi

# The long soak: thousands of trials while nodes and the scheduler are killed at random
# (minutes; its figures are in docs/reliability.md). `make test` runs a short one.
SOAK_TRIALS ?= 5000
SOAK_KILLS ?= 30
soak: setup
	MLT_SOAK_TRIALS=$(SOAK_TRIALS) MLT_SOAK_KILLS=$(SOAK_KILLS) $(CARGO) test --test soak -- --nocapture

# Coverage-guided fuzzing (cargo-fuzz, libFuzzer; needs the nightly toolchain): every target
# for FUZZ_SECONDS, from the seed corpus in fuzz/corpus (new inputs go to fuzz/work, crashes
# to fuzz/artifacts). `make test` replays the seeds on stable (tests/fuzz_corpus.rs).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= messages handshake spec bars features
fuzz: setup
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	$(CARGO) +nightly fuzz build
	for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$t && \
		if $(CARGO) +nightly fuzz run $$t fuzz/work/$$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) > fuzz/work/$$t.log 2>&1; then \
			echo "fuzz $$t: $$(grep -E '^Done [0-9]+ runs' fuzz/work/$$t.log)"; \
		else \
			tail -40 fuzz/work/$$t.log; echo "fuzz $$t: FAILED (the input is in fuzz/artifacts/$$t)"; exit 1; \
		fi; \
	done

bench: setup
	$(CARGO) build --release --bin mlt-cluster
	$(CARGO) build --release -p mlt-bench
	./target/release/mlt-bench cluster --nodes 1,8,64 --slots 4 --trials 20000 --steps 5
	./target/release/mlt-bench idle --connections 1000 --seconds 20

# Samplers and pruners next to a pinned Optuna in its own virtual environment (docs/benchmarks.md).
OPTUNA_VENV ?= .venv-optuna
bench-search: setup
	test -x $(OPTUNA_VENV)/bin/python || python3 -m venv $(OPTUNA_VENV)
	$(OPTUNA_VENV)/bin/pip install -q -r bench/optuna/requirements.txt
# Optuna's GPSampler needs PyTorch (~5 GB): BENCH_GP=1 installs it for the GP rows.
	test -z "$(BENCH_GP)" || $(OPTUNA_VENV)/bin/pip install -q -r bench/optuna/requirements-gp.txt
	$(CARGO) build --release -p mlt-bench
	mkdir -p bench/results
	./target/release/mlt-bench search --python $(OPTUNA_VENV)/bin/python | tee bench/results/search.md

# The prediction server under load beside `mlflow models serve` on the same LightGBM model, MLflow
# and lightgbm pinned in their own virtual environment (docs/serving.md, docs/benchmarks.md).
SERVE_VENV ?= .venv-serve
bench-serve: setup
	test -x $(SERVE_VENV)/bin/python || python3 -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install -q -r bench/serve/requirements.txt
	$(CARGO) build --release --bin mlt-cluster
	$(CARGO) build --release -p mlt-bench
	mkdir -p bench/results
	./target/release/mlt-bench serve --python $(SERVE_VENV)/bin/python | tee bench/results/serve.md

# The `cuda` feature's code compiled against burn's CUDA backend, without a CUDA toolkit and
# without the LLVM bundle cubecl-cuda downloads at build time (DOCS_RS skips it): a check that
# the GPU code path builds, not a GPU build (docs/operations.md).
check-cuda:
	DOCS_RS=1 CARGO_TARGET_DIR=target/cuda-check $(CARGO) check -p mlt-eval --features cuda
