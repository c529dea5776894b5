# crmkit: `make demo` runs the daily pipeline on sample_data/, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo

.PHONY: demo test fuzz lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

DEMO_DATE := 2025-01-01
DEMO_STORE := --store $(DEMO)/crm-store --config sample_data/crmkit.toml
DEMO_ARGS := $(DEMO_STORE) --registry $(DEMO)/models

# The daily job on sample_data/: history and customer attributes in (the attribute file
# is back-filled as known from the start of the history), a model trained, then the day's
# run ingests a new export from the inbox, scores every customer and writes the target list.
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/crmkit ingest sample_data/transactions.csv $(DEMO_STORE)
	$(BIN)/crmkit ingest --kind customers sample_data/customers.csv --known-from 2023-01-01 $(DEMO_STORE)
	$(BIN)/crmkit segment --as-of $(DEMO_DATE) --by value --out $(DEMO)/value_tiers.csv $(DEMO_STORE)
	$(BIN)/crmkit train --as-of $(DEMO_DATE) --horizon 90 --name churn $(DEMO_ARGS)
	# The same scores from one Dask task per store bucket (a two-process local cluster).
	$(BIN)/crmkit score --as-of $(DEMO_DATE) --out $(DEMO)/scores.csv $(DEMO_ARGS) --quiet
	$(BIN)/crmkit score --as-of $(DEMO_DATE) --out $(DEMO)/scores-dask.csv --executor dask $(DEMO_ARGS) --quiet
	cmp $(DEMO)/scores.csv $(DEMO)/scores-dask.csv && echo "Dask scores are byte-identical to the local ones"
	# Before the campaign: how many controls a +8 pp retention effect needs among 1,500
	# customers, plain and adjusted by each customer's earlier purchases (CUPED).
	$(BIN)/crmkit plan --as-of $(DEMO_DATE) --campaign-size 1500 --effect 8 --store $(DEMO)/crm-store --config sample_data/crmkit.toml
	mkdir -p $(DEMO)/inbox && cp sample_data/messy/us_quantity_price.tsv $(DEMO)/inbox/
	# The list also goes into a database table (SQLite here; PostgreSQL and DuckDB alike).
	$(BIN)/crmkit run --date $(DEMO_DATE) --campaign winback --inbox $(DEMO)/inbox --out $(DEMO)/out $(DEMO_ARGS) \
		--to sqlite:///$(DEMO)/lists.db --table crm_contacts
	$(BIN)/crmkit report --as-of $(DEMO_DATE) --out $(DEMO)/report.html $(DEMO_ARGS) --quiet
	# The same store from Python (docs/python-api.md): whom losing would cost most.
	$(BIN)/python -c "import crmkit; s = crmkit.score('$(DEMO)/crm-store', '$(DEMO_DATE)', \
		registry='$(DEMO)/models', config='sample_data/crmkit.toml'); \
		print(s.sort('expected_value_at_risk', descending=True) \
		.select('customer_id', 'value_tier', 'p_alive', 'churn_probability', 'expected_value_at_risk', 'reasons').head(5))"
	# The learning loop: customers respond to the campaign (simulated, whom the treatment
	# changes depends on the customer), the campaign is evaluated, an uplift model learns
	# from its treatment and control groups and predicts whom to treat next.
	$(BIN)/crmkit sample --respond-to $(DEMO)/out/winback/$(DEMO_DATE).assignments.csv \
		--uplift call=0.06,email=0.06 --heterogeneous --seed 3 --out $(DEMO)/response
	$(BIN)/crmkit ingest $(DEMO)/response/response.csv $(DEMO_STORE) --quiet
	# Plain, adjusted and always-valid intervals (valid however often the campaign is looked at).
	$(BIN)/crmkit evaluate --campaign winback --window 45 --sequential --store $(DEMO)/crm-store
	$(BIN)/crmkit uplift train --campaign winback --window 45 $(DEMO_ARGS)
	$(BIN)/crmkit uplift score --as-of 2025-02-15 --out $(DEMO)/uplift.csv $(DEMO_ARGS)
	# Before switching policy: what would value at risk, random, treat-all and uplift
	# targeting have achieved on this campaign at a budget of 300 (doubly robust estimates
	# with 95% intervals, the uplift cross-fitted so no customer predicts itself)?
	$(BIN)/crmkit policy compare --campaign winback --window 45 --budget 300 $(DEMO_ARGS)
	$(BIN)/crmkit report --as-of 2025-02-15 --campaign winback --window 45 --out $(DEMO)/report-winback.html $(DEMO_ARGS) --quiet
	# The next list is chosen by expected incremental profit, with a control group and a
	# random explore share, so the next campaign can be evaluated and learned from too. It
	# is a new campaign: the old one's groups were treated differently and now differ.
	# One day's list is too small a campaign to show who the e-mail changes: the evidence
	# gate says so, and sample_data/crmkit.toml lets the list fall back to value at risk.
	$(BIN)/crmkit targets --as-of 2025-02-15 --campaign winback-uplift --policy uplift --out $(DEMO)/out $(DEMO_ARGS)
	@echo "Report: $(DEMO)/report.html (and the campaign with its policies replayed: $(DEMO)/report-winback.html)"
	@echo "The day's contact list as a table: crm_contacts in $(DEMO)/lists.db (SQLite)"
	@echo "Uplift per customer and treatment: $(DEMO)/uplift.csv"
	@echo "Next list (by incremental profit where the uplift model has evidence): $(DEMO)/out/winback-uplift/2025-02-15.contacts.csv"
	@echo "Contact file for $(DEMO_DATE) (treatment group, for the sending system): $(DEMO)/out/winback/$(DEMO_DATE).contacts.csv"
	@echo "Assignment file for $(DEMO_DATE) (every group, for evaluation): $(DEMO)/out/winback/$(DEMO_DATE).assignments.csv"

# One test process per core (pytest-xdist); each fits with one OpenMP thread. The database
# tests start a PostgreSQL server of their own: .ci/postgres installs it when missing.
test: $(STAMP)
	bash .ci/postgres
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto

# The hostile-input suites at five times their `make test` size (about 22,000 cases):
# files, settings, command lines and imported ledgers; the amount grammar against its
# plain-Python reference; opt-out files of every shape against the lists; dates of one
# source across daily files; kills at random moments of a daily list. The statistics
# at the end give the count of every suite.
FUZZ := tests/test_fuzz.py tests/ingest/test_amounts.py tests/campaigns/test_fuzz_optouts.py \
	tests/ingest/test_fuzz_dates.py tests/campaigns/test_fuzz_kill.py
fuzz: $(STAMP)
	CRMKIT_FUZZ_SCALE=$${CRMKIT_FUZZ_SCALE:-5} $(BIN)/python -m pytest -q -p no:cacheprovider \
		-n auto --hypothesis-show-statistics $(FUZZ)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info
