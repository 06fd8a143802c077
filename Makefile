# The two commands a newcomer needs (see README):
#   make serve   install, train the default model if models/ has none, run the service
#   make test    install, run the guards (make lint), then the whole test suite
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install serve train lint test bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade -q pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/stance serve

train: $(STAMP)
	$(VENV)/bin/stance train

# The guards of the house (configured in pyproject.toml): lint and format (ruff), and the
# import contracts (import-linter: training never imports service, no cycles, the layers of
# service/). All three run and report; any failure fails the target.
lint: $(STAMP)
	@status=0; \
	$(VENV)/bin/ruff check . || status=1; \
	$(VENV)/bin/ruff format --check . || status=1; \
	$(VENV)/bin/lint-imports || status=1; \
	exit $$status

# pytest exits 5 when it collected no test: that must fail, not pass quietly.
test: lint
	@$(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(VENV)/bin/stance bench

clean-venv:
	rm -rf $(VENV)
