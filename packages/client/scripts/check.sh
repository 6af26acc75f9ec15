#!/usr/bin/env bash
# Checks @edge-relay/client as a user gets it: builds it (and fails when the committed browser
# build client/relay.js differs from the fresh one), runs its tests against the build, keeps the
# core client under its size budget, packs it, lints the tarball with publint (--strict) and
# arethetypeswrong, runs `npm publish --dry-run`, installs the tarball in a scratch project
# outside the repository and there requires it (CommonJS), imports it (ESM), and compiles a
# typed usage file with the repository's tsc under moduleResolution bundler and node16 (an ES
# module and a CommonJS one). Removes its scratch directory and leaves the working tree as it
# found it.
set -euo pipefail
package=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$package/../.." && pwd)
node=${NODE22:-node}
tsc=("$node" "$repo/node_modules/typescript/lib/tsc.js")
esbuild=$repo/node_modules/.bin/esbuild
budget_bytes=6144 # the core client, minified and gzipped
tree_before=$(git -C "$repo" status --porcelain)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/edge-relay-client-check.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

echo "== build (client/relay.js must be this build)"
"$node" "$package/scripts/build.mjs" --check
echo "== tests"
(cd "$package" && "$node" --test --test-reporter=tap test/*.test.mjs > "$scratch/tests.tap") || {
  cat "$scratch/tests.tap"; exit 1; }
grep -E '^# (pass|fail|skipped) ' "$scratch/tests.tap"

echo "== size budget"
# The core client is what an app importing RelayClient bundles (the package has no side effects,
# so a bundler leaves inbox() out); the whole ESM build is printed next to it.
core=$(echo "export { RelayClient } from '$package/dist/index.js';" |
  "$esbuild" --bundle --format=esm --minify --log-level=warning | gzip -9 | wc -c)
whole=$("$esbuild" --minify --log-level=warning < "$package/dist/index.js" | gzip -9 | wc -c)
echo "   RelayClient: $core bytes minified+gzipped (budget $budget_bytes); all of dist/index.js: $whole bytes ($(wc -c < "$package/dist/index.js") bytes unminified)"
[ "$core" -le "$budget_bytes" ] || { echo "the core client is over its size budget"; exit 1; }

echo "== pack"
tarball=$(cd "$package" && npm pack --silent --pack-destination "$scratch" | tail -n 1)
tarball=$scratch/$tarball
tar -tzf "$tarball" | sort | sed 's/^/   /'
# react/package.json and vue/package.json point resolvers without `exports` (TypeScript's
# node10) at dist/react.* and dist/vue.*.
if tar -tzf "$tarball" | grep -qvE '^package/(package\.json|README\.md|LICENSE|(react|vue)/package\.json|dist/.*)$'; then
  echo "the tarball holds files outside dist/"; exit 1
fi

echo "== publint and arethetypeswrong on the tarball"
"$node" "$repo/node_modules/publint/src/cli.js" run "$tarball" --strict
"$node" "$repo/node_modules/@arethetypeswrong/cli/dist/index.js" "$tarball" --no-emoji --no-color --format table-flipped

echo "== npm publish --dry-run"
(cd "$package" && npm publish --dry-run --silent) && echo "   ok"

echo "== install in a scratch project"
app=$scratch/app
mkdir -p "$app"
cat > "$app/package.json" <<'JSON'
{ "name": "scratch-app", "private": true, "version": "0.0.0" }
JSON
(cd "$app" && npm install "$tarball" --no-audit --no-fund --offline --silent)

echo "== require (CommonJS) and import (ESM)"
smoke='
  for (const key of ["RelayClient", "RelayError", "backoffDelay"]) if (typeof m[key] !== "function") throw new Error(`${key} is missing`);
  class NoSocket { constructor() { throw new Error("not opened"); } }
  const room = new m.RelayClient({ url: "https://relay.example.com", room: "chat:1", token: "a.b.c", WebSocket: NoSocket, events: null });
  if (room.status !== "connecting" || room.lastSeq !== null) throw new Error("unexpected state");
  if (!(new m.RelayError("closed") instanceof Error)) throw new Error("RelayError is no Error");'
(cd "$app" && "$node" -e "const m = require('@edge-relay/client'); $smoke console.log('   require: ok');")
(cd "$app" && "$node" --input-type=module -e "import * as m from '@edge-relay/client'; $smoke console.log('   import: ok');")

echo "== typed usage compiles (tsc --noEmit)"
cp "$package/test/usage.ts.txt" "$app/usage.ts"
cp "$package/test/usage.ts.txt" "$app/usage.mts"
cp "$package/test/usage.ts.txt" "$app/usage.cts"
common='"strict": true, "noEmit": true, "target": "es2022", "lib": ["es2022", "dom"], "types": [], "skipLibCheck": false'
cat > "$app/tsconfig.bundler.json" <<JSON
{ "compilerOptions": { $common, "module": "esnext", "moduleResolution": "bundler" }, "files": ["usage.ts"] }
JSON
cat > "$app/tsconfig.node16.json" <<JSON
{ "compilerOptions": { $common, "module": "node16", "moduleResolution": "node16" }, "files": ["usage.mts", "usage.cts"] }
JSON
# The React bindings too, with the repository's React types (the scratch project has no React).
cp "$package/test/usage-react.ts.txt" "$app/usage-react.ts"
cp "$package/test/usage-react.ts.txt" "$app/usage-react.mts"
cp "$package/test/usage-react.ts.txt" "$app/usage-react.cts"
react_types="\"paths\": { \"react\": [\"$repo/node_modules/@types/react\"] }"
cat > "$app/tsconfig.react-bundler.json" <<JSON
{ "compilerOptions": { $common, $react_types, "module": "esnext", "moduleResolution": "bundler" }, "files": ["usage-react.ts"] }
JSON
cat > "$app/tsconfig.react-node16.json" <<JSON
{ "compilerOptions": { $common, $react_types, "module": "node16", "moduleResolution": "node16" }, "files": ["usage-react.mts", "usage-react.cts"] }
JSON
# The Vue bindings, with the repository's Vue (it ships its declarations, resolved through its
# package.json like an installed copy).
ln -s "$repo/node_modules/vue" "$app/node_modules/vue"
cp "$package/test/usage-vue.ts.txt" "$app/usage-vue.ts"
cp "$package/test/usage-vue.ts.txt" "$app/usage-vue.mts"
cp "$package/test/usage-vue.ts.txt" "$app/usage-vue.cts"
cat > "$app/tsconfig.vue-bundler.json" <<JSON
{ "compilerOptions": { $common, "module": "esnext", "moduleResolution": "bundler" }, "files": ["usage-vue.ts"] }
JSON
cat > "$app/tsconfig.vue-node16.json" <<JSON
{ "compilerOptions": { $common, "module": "node16", "moduleResolution": "node16" }, "files": ["usage-vue.mts", "usage-vue.cts"] }
JSON
for config in bundler node16 react-bundler react-node16 vue-bundler vue-node16; do
  (cd "$app" && "${tsc[@]}" -p "tsconfig.$config.json") || { echo "   $config: failed"; exit 1; }
  echo "   $config: ok"
done
echo "   tarball: $(wc -c < "$tarball") bytes"

tree_after=$(git -C "$repo" status --porcelain)
if [ "$tree_after" != "$tree_before" ]; then
  echo "the check changed the working tree:"; diff <(echo "$tree_before") <(echo "$tree_after"); exit 1
fi
echo "== @edge-relay/client: ok"
