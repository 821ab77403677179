# The project's commands. `make deploy` builds the lab and deploys the cluster onto it;
# `make test` runs the tests. Both install what they need first.
PYTHON ?= python3
PYTEST = $(PYTHON) -m pytest
APT_PACKAGES = $(shell grep -hv '^\#' tests/requirements-apt.txt lab/requirements-apt.txt)

.PHONY: setup artifacts lab deploy dry-run test test-fast test-lab test-e2e test-e2e-more test-large down

setup:  ## Debian packages and pinned Python packages
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# services the packages start on their own are not ours: the tests and the lab run their own
	@for s in haproxy keepalived nginx docker-registry; do systemctl disable --now $$s >/dev/null 2>&1; service $$s stop >/dev/null 2>&1; done; true
	$(PYTHON) -m pip install -q -r requirements.txt

artifacts: setup  ## real Kubernetes, etcd, containerd, Calico... built from Go modules (cached)
	$(PYTHON) -m artifacts build

lab: artifacts  ## boot the built-in lab (default: lab/clusters/ha.yaml, or $$KUBEHA_CLUSTER)
	$(PYTHON) -m lab up

deploy: lab  ## the main job: an HA cluster on the lab
	$(PYTHON) -m pyinfra -y inventory.py deploy.py

dry-run: lab  ## what a deploy would change, without changing it
	$(PYTHON) -m pyinfra inventory.py deploy.py --dry

test: setup test-fast test-lab test-e2e  ## every tier

test-fast:  ## no machines needed: cluster file, templates checked by real tools, facts, plans
	$(PYTEST) -m "not lab and not artifacts and not e2e and not large" -q

# A skipped test of the machine tiers fails them (KUBEHA_REQUIRE_MACHINES=1, tests/conftest.py):
# a tier that did not really run must not pass.
test-lab: artifacts  ## the lab's own tests, the artifacts, the integration tier on the lab's machines
	KUBEHA_REQUIRE_MACHINES=1 $(PYTEST) -m "lab or artifacts" -q -rs --durations=15

test-e2e: artifacts  ## whole clusters (HA, compact) deployed on fresh lab machines, made to lose machines, then a day-2 journey each
	KUBEHA_REQUIRE_MACHINES=1 $(PYTEST) tests/e2e -m "e2e and not e2e_more" -q -rs -s --durations=15

test-e2e-more: artifacts  ## test-e2e with the day-2 scenarios kept out of CI's time (marker e2e_more); outside CI
	KUBEHA_REQUIRE_MACHINES=1 $(PYTEST) tests/e2e -m e2e -q -rs -s --durations=15

test-large: artifacts  ## the twelve-machine layout (5 control planes), a worker added to it running; outside CI
	KUBEHA_REQUIRE_MACHINES=1 $(PYTEST) tests/e2e/test_large.py -m large -q -rs -s --durations=15

down:  ## remove the lab
	$(PYTHON) -m lab down
