# Palisade's build entry points. Two commands matter on a fresh machine:
#   make demo   — Palisade on its local default (real control plane, webhook, enforcer)
#   make test   — every test, against the real API server and the real kernel
SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/palisade
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.1.0-dev)
LDFLAGS := -s -w -X github.com/palisade-dev/palisade/internal/version.Version=$(VERSION)
TEST_TIMEOUT ?= 30m

.PHONY: build image test generate verify-generate lint demo envtest-assets bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/palisade

# OCI image tarball of the static binary, built without a Docker daemon
# (kind load image-archive bin/palisade-image.tar).
image:
	$(GO) run ./hack/image -o bin/palisade-image.tar

# The real kube-apiserver, etcd and kubectl, built from the Go module proxy.
envtest-assets:
	@hack/envtest-assets.sh

# WITH_KUBE_PROXY=1: tests/e2e runs the real kube-proxy (nftables mode)
# in its nodes for the Services proof.
test:
	@assets=$$(WITH_KUBE_PROXY=1 hack/envtest-assets.sh) && \
	KUBEBUILDER_ASSETS="$$assets" $(GO) test -timeout $(TEST_TIMEOUT) ./...

bench:
	@assets=$$(hack/envtest-assets.sh) && \
	KUBEBUILDER_ASSETS="$$assets" $(GO) test -run '^$$' -bench . -benchmem ./...

# Regenerates the bpf2go objects (pinned clang; see hack/bpf-generate.sh).
generate:
	hack/bpf-generate.sh

# Fails when regenerating would change a committed generated file.
verify-generate:
	hack/bpf-generate.sh --check
	@git diff --exit-code --stat -- '*.go' '*.o' || { echo "generated files are stale: run make generate and commit"; exit 1; }

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

demo: build
	@hack/demo.sh

clean:
	rm -rf bin
