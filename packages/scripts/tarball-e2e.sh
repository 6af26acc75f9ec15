#!/usr/bin/env bash
# Both packages as a user installs them, end to end: builds and packs @edge-relay/client and
# @edge-relay/server, installs the two tarballs (offline: nothing is fetched) in a scratch
# project outside the repository, requires (CommonJS) and imports (ESM) both, compiles a typed
# usage file of both with the repository's tsc under moduleResolution bundler and node16 (an ES
# module and a CommonJS one), and runs tarball/receive.mjs there: a token minted with the
# tarball's signToken, a RelayClient from the tarball connected to the relay, a broadcast from
# the tarball's RelayServer that the client must receive.
# Needs a running relay: RELAY_URL, JWT_SECRET and WEBHOOK_SECRET (scripts/test runs it in its
# e2e step against wrangler dev). Needs Node 22 ($NODE22 or node): the client uses its global
# WebSocket. Removes its scratch directory and leaves the working tree as it found it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
node=${NODE22:-node}
tsc=("$node" "$repo/node_modules/typescript/lib/tsc.js")
for name in RELAY_URL JWT_SECRET WEBHOOK_SECRET; do
  [ -n "${!name:-}" ] || { echo "$name is not set: this needs a running relay"; exit 1; }
done
tree_before=$(git -C "$repo" status --porcelain)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/edge-relay-tarballs.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

echo "== build and pack"
"$node" "$repo/packages/server/scripts/build.mjs" # the client builds itself when packed (prepack)
tarballs=()
for package in client server; do
  name=$(cd "$repo/packages/$package" && PATH="$(dirname "$node"):$PATH" npm pack --silent --pack-destination "$scratch" | tail -n 1)
  tarballs+=("$scratch/$name")
  echo "   $name: $(wc -c < "$scratch/$name") bytes"
done

echo "== install both tarballs in a scratch project"
app=$scratch/app
mkdir -p "$app"
echo '{ "name": "scratch-app", "private": true, "version": "0.0.0" }' > "$app/package.json"
(cd "$app" && npm install "${tarballs[@]}" --offline --no-audit --no-fund --silent)

echo "== require (CommonJS) and import (ESM)"
smoke='
  for (const key of ["RelayClient", "RelayError", "inbox"]) if (typeof client[key] !== "function") throw new Error(`client: ${key} is missing`);
  for (const key of ["signToken", "RelayServer", "verifySignature"]) if (typeof server[key] !== "function") throw new Error(`server: ${key} is missing`);'
(cd "$app" && "$node" -e "const client = require('@edge-relay/client'); const server = require('@edge-relay/server'); $smoke console.log('   require: ok');")
(cd "$app" && "$node" --input-type=module -e "import * as client from '@edge-relay/client'; import * as server from '@edge-relay/server'; $smoke console.log('   import: ok');")

echo "== typed usage compiles (tsc --noEmit)"
for ext in ts mts cts; do cp "$here/tarball/usage.ts.txt" "$app/usage.$ext"; done
common='"strict": true, "noEmit": true, "target": "es2022", "lib": ["es2022", "dom"], "types": [], "skipLibCheck": false'
cat > "$app/tsconfig.bundler.json" <<JSON
{ "compilerOptions": { $common, "module": "esnext", "moduleResolution": "bundler" }, "files": ["usage.ts"] }
JSON
cat > "$app/tsconfig.node16.json" <<JSON
{ "compilerOptions": { $common, "module": "node16", "moduleResolution": "node16" }, "files": ["usage.mts", "usage.cts"] }
JSON
for config in bundler node16; do
  (cd "$app" && "${tsc[@]}" -p "tsconfig.$config.json") || { echo "   $config: failed"; exit 1; }
  echo "   $config: ok"
done

echo "== a broadcast from the server package reaches a client from the client package"
cp "$here/tarball/receive.mjs" "$app/receive.mjs"
(cd "$app" && "$node" receive.mjs)

tree_after=$(git -C "$repo" status --porcelain)
if [ "$tree_after" != "$tree_before" ]; then
  echo "the check changed the working tree:"; diff <(echo "$tree_before") <(echo "$tree_after"); exit 1
fi
echo "== packed tarballs end to end: ok"
