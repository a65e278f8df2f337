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
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(SECRET_KEY_FILE):
	@mkdir -p $(@D)
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@
	@chmod 600 $@

secret-key: $(SECRET_KEY_FILE)

serve: install $(SECRET_KEY_FILE)
	export SECRET_KEY="$${SECRET_KEY:-$$(cat $(SECRET_KEY_FILE))}"; \
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
