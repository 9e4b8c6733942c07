# pyrkt — set-up, checks, tests, demo and benchmark. Everything runs as root on Debian 12.
#
#   make demo    install what running pods needs, then run a two-app pod from a busybox image and clean up
#   make test    also install what the tests need, lint, then run the whole suite (unit, integration, e2e)
#   make bench   also install crun, podman, containerd & co., then pyrkt against them on the same image; see bench/README.md
#
# The targets are idempotent: a second run skips what is already in place.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The interpreter that makes the venv: Debian's /usr/bin/python3 (3.11 on Debian 12) when it is
# 3.11 or newer. It is built with PGO and LTO and libpython linked in, so it starts ~1 ms sooner
# and runs pyrkt ~12% faster than a default pyenv build (a shared libpython, no PGO): `pyrkt
# run` ~35 ms instead of ~40. Looked up when used, since `make deps` may just have installed it.
# Else a pyenv 3.11 directly (its `python3` on PATH is a slow shim), else whatever `python3` is.
SYSTEM_PY311 = $(shell /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo /usr/bin/python3)
PYENV_PY311 := $(shell ls -d $(HOME)/.pyenv/versions/3.11*/bin/python3.11 2>/dev/null | sort -V | tail -n1)
PYTHON ?= $(or $(SYSTEM_PY311),$(PYENV_PY311),python3)

VENV := .venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed

# Debian packages. DEMO_DEBS: what pyrkt needs to run pods: the venv's Python, the CNI plugins
# and iptables (NAT) of --net, libseccomp (apps' seccomp filters), gpg (signed ACIs, trust),
# util-linux; and busybox-static, the demo's (and the tests') image.
DEMO_DEBS := busybox-static containernetworking-plugins iptables libseccomp2 gpg python3 python3-venv util-linux
# TEST_DEBS adds what the tests call on the host: skopeo (pushes to, reads from) docker-registry,
# gnupg (gpg-agent makes the test keys), openssl (test TLS certificates), iproute2 (ip link),
# golang-go and golang-github-appc-spec-dev (the appc ACE validator, built offline by the tests),
# golang-github-docker-spdystream-dev (the tests' SPDY client of the CRI streaming server).
TEST_DEBS := $(DEMO_DEBS) skopeo docker-registry gnupg openssl iproute2 golang-go golang-github-appc-spec-dev \
	golang-github-docker-spdystream-dev
# BENCH_DEBS adds what pyrkt is measured against: crun, podman, skopeo + umoci, docker-registry.
BENCH_DEBS := $(DEMO_DEBS) crun podman skopeo umoci docker-registry
# and, when it can be installed, containerd (brings runc) for the CRI row: bench.py skips that
# row, saying why, when it is missing. Its service is not started (install-deps.sh refuses it).
BENCH_OPTIONAL_DEBS := containerd

# Extra arguments: make test PYTEST_ARGS='-k logs -x'; make bench BENCH_ARGS='--runs 50'
PYTEST_ARGS ?=
BENCH_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_ROOT_USER_ACTION := ignore

.PHONY: help deps test-deps bench-deps venv lint proto test demo bench clean distclean

help:
	@echo "make demo    set up everything and run a demo pod"
	@echo "make test    set up everything, lint, run the whole test suite"
	@echo "make bench   benchmark pyrkt against crun, podman and containerd"
	@echo "make deps | test-deps | bench-deps | venv | lint | proto | clean | distclean"

deps:
	@bash scripts/install-deps.sh $(DEMO_DEBS)

test-deps:
	@bash scripts/install-deps.sh $(TEST_DEBS)

bench-deps:
	@bash scripts/install-deps.sh $(BENCH_DEBS)
	@bash scripts/install-deps.sh $(BENCH_OPTIONAL_DEBS) || echo "deps: $(BENCH_OPTIONAL_DEBS) could not be installed; make bench leaves its CRI row out"

# The venv is made again when its interpreter is not $(PYTHON) (e.g. made by an older Makefile).
SAME_PY = [ "$$(readlink -f $(VENV_PY))" = "$$(readlink -f "$$(command -v $(PYTHON))")" ]

venv:
	@if [ -e $(VENV_STAMP) ] && ! $(SAME_PY); then rm -f $(VENV_STAMP); fi
	@$(MAKE) --no-print-directory $(VENV_STAMP)

# Rebuilt (re-installed) only when pyproject.toml changes; a venv whose interpreter is gone, or
# is another than $(PYTHON), is made again from scratch.
$(VENV_STAMP): pyproject.toml scripts/write-launcher.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "pyrkt needs Python 3.11+, $(PYTHON) is " + sys.version)'
	@if ! $(VENV_PY) -c 'pass' 2>/dev/null || ! $(SAME_PY); then \
		echo "creating $(VENV) with $(PYTHON)"; \
		$(PYTHON) -m venv --clear $(VENV); \
	fi
	$(VENV)/bin/pip install -q -e '.[api,test]'
	$(VENV_PY) scripts/write-launcher.py $(VENV) src
	$(VENV_PY) -m compileall -q src
	@touch $@

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src/pyrkt
	$(VENV)/bin/lint-imports

# The API service's and the CRI server's message classes, generated from their .proto by the
# venv's grpcio-tools and checked in (a plain install needs no protoc): run after editing a .proto.
# The method tables are written by hand (pyrkt/api/service.py, pyrkt/api/cri/server.py), so
# there is no *_pb2_grpc.py.
PROTO := src/pyrkt/api/proto/v1alpha.proto src/pyrkt/api/proto/cri.proto
proto: venv
	$(VENV_PY) -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src $(PROTO)

test: test-deps venv lint
	@bash scripts/run-tests.sh $(PYTEST_ARGS)

demo: deps venv
	@bash scripts/demo.sh

bench: bench-deps venv
	$(VENV_PY) bench/bench.py $(BENCH_ARGS)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build bench/out src/*.egg-info
	find src tests bench scripts -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
