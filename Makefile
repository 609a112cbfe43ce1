# Labformer: `make demo` runs the whole portal on one machine, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | sha256sum | cut -c1-16)

# The tests always run against PostgreSQL and Redis (override to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/labformer
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: venv demo test web worker worker-short beat flower migrate clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -e clients/python
	# This checkout's mlcore, portal and workers, editable: `python -m mlcore` works from any directory.
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

migrate: venv
	$(PY) manage.py migrate --noinput

demo: venv
	$(PY) manage.py demo

web: venv
	$(PY) manage.py runserver 127.0.0.1:8000

# Training worker (also takes short work when idle) and the short-work worker (validation,
# predictions, sweeps): run both, so short work never waits behind training.
worker: venv
	$(VENV)/bin/celery -A workers.celery worker -Q cpu,gpu -c 1 -n training@%h --loglevel INFO

worker-short: venv
	$(VENV)/bin/celery -A workers.celery worker -Q short -c 2 -n short@%h --loglevel INFO

beat: venv
	$(VENV)/bin/celery -A workers.celery beat --loglevel INFO --schedule var/celerybeat-schedule

flower: venv
	@test -n "$$FLOWER_PASSWORD" || { echo "set FLOWER_PASSWORD (and optionally FLOWER_USER) first"; exit 1; }
	$(VENV)/bin/celery -A workers.celery flower --port=5555 --basic-auth=$${FLOWER_USER:-admin}:$$FLOWER_PASSWORD

test: venv
	bash scripts/ensure-services.sh
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} CELERY_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	  $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf var/broker var/media var/staticfiles
