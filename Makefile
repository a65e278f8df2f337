# EORA points: `make serve` and `make test` do all the set-up on a fresh machine.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 \
	&& $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8300
# Where settings put the SQLite database; the generated secret key goes there too.
EORA_DATA_DIR ?= data
SECRET_KEY_FILE := $(EORA_DATA_DIR)/secret_key

.PHONY: install secret-key serve test lint format messages

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(SECRET_KEY_FILE):
	@mkdir -p $(@D)
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@
	@chmod 600 $@

secret-key: $(SECRET_KEY_FILE)

# Every server process writes its metrics here and /metrics adds them up (see the
# README's Metrics). Emptied of the last run's files at each start, whatever
# WEB_CONCURRENCY: counters start again from zero with the server. Set it empty
# for one process's own metrics.
PROMETHEUS_MULTIPROC_DIR ?= $(EORA_DATA_DIR)/prometheus

.PHONY: metrics-dir
metrics-dir:
	@if [ -n "$(PROMETHEUS_MULTIPROC_DIR)" ]; then \
		mkdir -p "$(PROMETHEUS_MULTIPROC_DIR)" && \
		find "$(PROMETHEUS_MULTIPROC_DIR)" -maxdepth 1 -type f -name '*.db' -delete; \
	fi

serve: install $(SECRET_KEY_FILE) metrics-dir
	export SECRET_KEY="$${SECRET_KEY:-$$(cat $(SECRET_KEY_FILE))}"; \
	export PROMETHEUS_MULTIPROC_DIR="$(PROMETHEUS_MULTIPROC_DIR)"; \
	$(BIN)/python manage.py migrate --noinput && \
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0 && \
	exec $(BIN)/uvicorn eora.asgi:application --host $(HOST) --port $(PORT) \
		--workers $${WEB_CONCURRENCY:-1} --no-server-header

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

messages: install
	DEBUG=true $(BIN)/python manage.py makemessages --locale ko --locale en --ignore '.venv/*' --no-obsolete --no-wrap --ignore 'tests/*' --ignore 'bench/*'
	DEBUG=true $(BIN)/python manage.py compilemessages --ignore '.venv/*'

# The browser libraries of the chat and usage pages, served from static/vendor/ as their npm
# packages publish them (with their licences), so a clone needs no npm: `make
# vendor` fetches these versions again with npm; commit what it writes.
MARKED_VERSION ?= 18.2.1
DOMPURIFY_VERSION ?= 3.5.0
HIGHLIGHT_VERSION ?= 11.12.0
CHARTJS_VERSION ?= 4.5.1
VENDOR_DIR := static/vendor

.PHONY: vendor
vendor:
	@command -v npm >/dev/null 2>&1 || { echo "npm is required to refresh $(VENDOR_DIR)."; exit 1; }
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	npm pack --silent --pack-destination "$$tmp" marked@$(MARKED_VERSION) \
		dompurify@$(DOMPURIFY_VERSION) @highlightjs/cdn-assets@$(HIGHLIGHT_VERSION) \
		chart.js@$(CHARTJS_VERSION) >/dev/null; \
	for name in marked dompurify highlightjs-cdn-assets chart.js; do \
		mkdir -p "$$tmp/$$name"; tar xzf "$$tmp/$$name"-*.tgz -C "$$tmp/$$name"; \
	done; \
	rm -rf $(VENDOR_DIR); \
	mkdir -p $(VENDOR_DIR)/marked $(VENDOR_DIR)/dompurify $(VENDOR_DIR)/highlight/styles \
		$(VENDOR_DIR)/chartjs; \
	cp "$$tmp"/marked/package/lib/marked.umd.js "$$tmp"/marked/package/lib/marked.umd.js.map \
		"$$tmp"/marked/package/LICENSE $(VENDOR_DIR)/marked/; \
	cp "$$tmp"/dompurify/package/dist/purify.min.js "$$tmp"/dompurify/package/dist/purify.min.js.map \
		"$$tmp"/dompurify/package/LICENSE "$$tmp"/dompurify/package/LICENSE-MPL $(VENDOR_DIR)/dompurify/; \
	cp "$$tmp"/highlightjs-cdn-assets/package/highlight.min.js \
		"$$tmp"/highlightjs-cdn-assets/package/LICENSE $(VENDOR_DIR)/highlight/; \
	cp "$$tmp"/highlightjs-cdn-assets/package/styles/github.min.css $(VENDOR_DIR)/highlight/styles/; \
	cp "$$tmp"/chart.js/package/dist/chart.umd.min.js "$$tmp"/chart.js/package/dist/chart.umd.min.js.map \
		"$$tmp"/chart.js/package/LICENSE.md $(VENDOR_DIR)/chartjs/; \
	printf '%s\n' "marked $(MARKED_VERSION)" "dompurify $(DOMPURIFY_VERSION)" \
		"@highlightjs/cdn-assets $(HIGHLIGHT_VERSION)" "chart.js $(CHARTJS_VERSION)" \
		> $(VENDOR_DIR)/VERSIONS
	@echo "Vendored into $(VENDOR_DIR):" && cat $(VENDOR_DIR)/VERSIONS
