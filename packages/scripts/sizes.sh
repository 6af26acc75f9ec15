#!/usr/bin/env bash
# Measures what the packages cost an app, minified and gzipped, next to the peers users compare
# them with (partysocket and centrifuge, their latest versions unless given as NAME@VERSION):
# packs @edge-relay/client and @edge-relay/server, installs the tarballs and the peers in a
# scratch project outside the repository (the peers come from the package registry, so this is
# no part of scripts/test), and bundles each entry the same way:
#   echo "<export line>" | esbuild --bundle --minify --format=esm | gzip -9 | wc -c
# (esbuild's default browser platform, dependencies bundled). Prints a Markdown table.
# Usage: bash packages/scripts/sizes.sh [partysocket@VERSION] [centrifuge@VERSION]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
node=${NODE22:-node}
esbuild=$repo/node_modules/.bin/esbuild
partysocket=${1:-partysocket}
centrifuge=${2:-centrifuge}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/edge-relay-sizes.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

"$node" "$repo/packages/server/scripts/build.mjs" # the client builds itself when packed (prepack)
for package in client server; do
  (cd "$repo/packages/$package" && npm pack --silent --pack-destination "$scratch" > /dev/null)
done
echo '{ "name": "sizes", "private": true, "version": "0.0.0" }' > "$scratch/package.json"
(cd "$scratch" && npm install "$scratch"/edge-relay-*.tgz "$partysocket" "$centrifuge" \
  --no-audit --no-fund --silent --ignore-scripts)

version() { "$node" -p "require('$scratch/node_modules/$1/package.json').version"; }
size() { # size EXPORT-LINE: minified+gzipped bytes of the bundle of that one line
  (cd "$scratch" && echo "$1" | "$esbuild" --bundle --minify --format=esm --log-level=warning | gzip -9 | wc -c)
}
echo "| package | entry | min+gzip bytes |"
echo "|---|---|---:|"
row() { echo "| $1 $(version "$1") | \`$2\` | $(size "$2") |"; }
row @edge-relay/client "export { RelayClient } from '@edge-relay/client'"
row @edge-relay/client "export * from '@edge-relay/client'"
row @edge-relay/server "export * from '@edge-relay/server'"
row partysocket "export { default } from 'partysocket'"
row partysocket "export * from 'partysocket'"
row centrifuge "export { Centrifuge } from 'centrifuge'"
row centrifuge "export * from 'centrifuge'"
echo "esbuild $("$esbuild" --version), gzip -9"
