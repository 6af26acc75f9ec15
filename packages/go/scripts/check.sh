#!/usr/bin/env bash
# Checks the Go package (edgerelay) as a user gets it. `check.sh` (unit): gofmt, go vet, the
# unit tests, and the README's first example built in a scratch module outside the repository
# that requires the package through a replace directive. `check.sh integration`: the tests
# against the relay named by RELAY_URL, JWT_SECRET and WEBHOOK_SECRET, none of them skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
# Standard library only: never reach for a module proxy, a checksum database or a newer toolchain.
export GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GOFLAGS= GOTELEMETRY=off
go version

if [ "${1:-unit}" = integration ]; then
  for name in RELAY_URL JWT_SECRET WEBHOOK_SECRET; do
    [ -n "${!name:-}" ] || { echo "check.sh integration: $name is not set" >&2; exit 1; }
  done
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  go test -count=1 -v -run '^TestRelay' . | tee "$log"
  if grep -q -e '^--- SKIP' -e '^--- FAIL' "$log" || ! grep -q '^--- PASS: TestRelay' "$log"; then
    echo "check.sh integration: a relay test was skipped, failed or did not run" >&2
    exit 1
  fi
  exit 0
fi

unformatted=$(gofmt -l .)
[ -z "$unformatted" ] || { echo "gofmt: not formatted: $unformatted" >&2; exit 1; }
go vet ./...
# The unit tests are every test but the relay ones (those need a relay; scripts/test runs them
# in its e2e phase), listed by name so that none is reported as skipped here.
unit=$(go test -list . | grep -E '^(Test|Example)' | grep -v '^TestRelay' | paste -sd '|' -)
go test -count=1 -v -run "^($unit)\$" .

# A user's module: the README's first Go block as its main package, the package required from
# this checkout through a replace directive, built and vetted offline.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
here=$(pwd)
awk '/^```go$/ { inside = 1; next } inside && /^```$/ { exit } inside { print }' README.md > "$scratch/main.go"
(
  cd "$scratch"
  go mod init example.com/app >/dev/null 2>&1
  go mod edit -require=github.com/edge-relay/edge-relay/packages/go@v0.0.0 \
    -replace="github.com/edge-relay/edge-relay/packages/go=$here"
  go vet . && go build -o app . && echo "scratch module: the README example builds against the package"
)
