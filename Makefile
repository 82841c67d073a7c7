# Trestle: build, test and install the CNI plugins.
CNI_BIN_DIR ?= /opt/cni/bin
CNI_CONF_DIR ?= /etc/cni/net.d
# Where the script form keeps its bundles, and where the `trestle` CLI is linked.
TRESTLE_LIB_DIR ?= $(CNI_BIN_DIR)/../lib/trestle
BIN_DIR ?= /usr/local/bin
# Where make install puts the daemon's units (trestle.socket, trestle.service).
SYSTEMD_DIR ?= /etc/systemd/system
# script: launchers run by the node's Node.js (faster start); sea: one binary that
# needs no Node.js on the node (kind, most Kubernetes nodes).
INSTALL_FORM ?= script
DESTDIR ?=
export CNI_BIN_DIR CNI_CONF_DIR TRESTLE_LIB_DIR BIN_DIR SYSTEMD_DIR INSTALL_FORM DESTDIR
SOURCES := $(shell find src -name '*.ts') scripts/build.mjs scripts/bundle-options.mjs package.json

.PHONY: build test typecheck clean demo deps test-deps install uninstall sea

PLUGINS := trestle-bridge trestle-host-local trestle-portmap

build: dist/.built dist/client/.copied

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

dist/.built: node_modules/.package-lock.json $(SOURCES)
	node scripts/build.mjs
	@touch $@

# The native client (client/trestle-client.c), built with the bundles' digest as its
# build id, then copied (not linked: it finds bin/trestle-node beside its own file) under
# each plugin's name; write-then-rename, so a running plugin never makes cp fail.
dist/client/trestle-client: dist/.built client/trestle-client.c scripts/build-client.sh
	scripts/build-client.sh

dist/client/.copied: dist/client/trestle-client
	for p in $(PLUGINS); do cp dist/client/trestle-client bin/.$$p.tmp && mv -f bin/.$$p.tmp bin/$$p; done
	@touch $@

typecheck: node_modules/.package-lock.json
	npx --no-install tsc --noEmit -p .

deps:
	scripts/install-deps.sh

test-deps:
	scripts/install-deps.sh --tests

# Shows Trestle's main job in a sandbox of network namespaces (needs root).
demo: deps build
	bin/trestle demo

# Runs every test; most need root (network namespaces) and the packages .ci/run installs.
test: test-deps build typecheck
	node scripts/run-tests.mjs $(TESTS)

clean:
	rm -rf dist

# The single executable form: dist/sea/trestle (Node with our bundle injected).
sea: dist/sea/trestle

dist/sea/trestle: node_modules/.package-lock.json $(SOURCES) scripts/build-sea.mjs
	node scripts/build-sea.mjs

# The container image of conf/kubernetes/trestle.yaml, built without a Docker engine:
# dist/image/trestle.tar (localhost/trestle:<version>), a docker-archive that
# `kind load image-archive` and `ctr images import` take.
.PHONY: image
image: build sea
	node scripts/build-image.mjs

install: build $(if $(filter sea,$(INSTALL_FORM)),sea)
	node scripts/install.mjs install

uninstall:
	node scripts/install.mjs uninstall

# Benchmark against the reference plugins (root; sandbox namespaces only). A few
# minutes; `make bench BENCH=full` takes much longer and writes bench/RESULTS.md.
.PHONY: bench
bench: build
	node bench/build.mjs
	node dist/bench.mjs $(if $(filter full,$(BENCH)),--full)

# ADD/DEL cycles of the default chain with seeded SIGKILLs, in a sandbox (root; not
# part of `make test`): a table of what is left after the GC of every 100 cycles.
SOAK_CYCLES ?= 1000
.PHONY: soak
soak: test-deps build
	node scripts/soak.mjs --cycles $(SOAK_CYCLES)
