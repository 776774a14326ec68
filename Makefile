# The two commands a newcomer needs: `make demo` and `make test`. Each sets itself up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test deps venv lint bench campaign pictures clean model

# compat: the checkout's folder on sys.path by a .pth line; setuptools' default editable finder imports
# pathlib, re and more at every interpreter start (10 ms of each command's start here).
$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

venv: $(STAMP)

# Debian packages the integration tests use (mosquitto, keepalived, haproxy, promtool, alertmanager,
# graphviz, chromium and its driver);
# installed when run as root, otherwise listed, and the tests that need them are skipped.
deps:
	@scripts/install-debian-deps

# The daemon on the demo stack, all state under .demo/, no root needed; its dashboard (read-only) on
# http://127.0.0.1:9465/.
demo: venv
	$(BIN)/svcmgrd --root .demo --manifests manifests/examples --web 127.0.0.1:9465

# Test modules run on several workers (most tests wait on real processes, not the CPU); the
# modules that share fixed ports or network labs each keep to one worker (xdist_group).
WORKERS ?= 3

# The model and campaign tests replay fixed seeds here, so that a red run is the code's change and not a new
# draw; `make model` and `make campaign` draw new seeds every run to explore (each failure prints its seed).
MODEL_SEED ?= 1
CAMPAIGN_SEED ?= 7

test: venv deps
	$(BIN)/ruff check .
	SVCMGR_MODEL_SEED=$(MODEL_SEED) SVCMGR_CAMPAIGN_SEED=$(CAMPAIGN_SEED) $(BIN)/pytest -n $(WORKERS) --dist loadgroup

# The long fault campaign (docs/durability.md): in each contract mode, 200 kill -9 of the daemon and every
# other fault 20 times, the invariants checked after each round; about 25 minutes (11 a mode here). Its
# figures (and the seeds to replay) go to campaign-results.jsonl.
campaign: venv deps
	SVCMGR_CAMPAIGN=long SVCMGR_CAMPAIGN_RESULTS=campaign-results.jsonl $(BIN)/pytest -s -q \
		tests/integration/campaign/test_campaign.py

lint: venv
	$(BIN)/ruff check .

# A long campaign of the engine against the model of illumos' graph.c (docs/smf-differences.md);
# make test runs a short one.
model: venv
	SVCMGR_MODEL_EXAMPLES=$${SVCMGR_MODEL_EXAMPLES:-5000} SVCMGR_MODEL_STEPS=$${SVCMGR_MODEL_STEPS:-60} \
		$(BIN)/pytest tests/model -q -x

bench: venv deps
	$(BIN)/python -m bench

# The pictures of docs/observability.md, made from a run of the demo (its ports must be free).
pictures: venv
	$(BIN)/python scripts/demo-pictures

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache *.egg-info campaign-results.jsonl
