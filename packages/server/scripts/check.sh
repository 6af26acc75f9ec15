#!/usr/bin/env bash
# Checks @edge-relay/server as a user gets it: builds it, runs its tests, packs it, installs the
# tarball in a scratch project outside the repository and there requires it (CommonJS), imports
# it (ESM), runs it, and compiles a typed usage file with the repository's tsc under
# moduleResolution bundler and node16 (an ES module and a CommonJS one). Prints the tarball's
# size and the minified+gzipped size of dist/index.js. Removes its scratch directory and leaves
# the working tree as it found it.
set -euo pipefail
package=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$package/../.." && pwd)
node=${NODE22:-node}
tsc=("$node" "$repo/node_modules/typescript/lib/tsc.js")
esbuild=$repo/node_modules/.bin/esbuild
tree_before=$(git -C "$repo" status --porcelain)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/edge-relay-server-check.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

echo "== build"
"$node" "$package/scripts/build.mjs"
echo "== tests"
(cd "$package" && "$node" --test --test-reporter=tap test/*.test.mjs > "$scratch/tests.tap") || {
  cat "$scratch/tests.tap"; exit 1; }
grep -E '^# (pass|fail|skipped) ' "$scratch/tests.tap"

echo "== pack"
tarball=$(cd "$package" && npm pack --silent --pack-destination "$scratch" | tail -n 1)
tarball=$scratch/$tarball
tar -tzf "$tarball" | sort | sed 's/^/   /'
if tar -tzf "$tarball" | grep -qvE '^package/(package\.json|README\.md|LICENSE|dist/.*)$'; then
  echo "the tarball holds files outside dist/"; exit 1
fi

echo "== install in a scratch project"
app=$scratch/app
mkdir -p "$app"
cat > "$app/package.json" <<'JSON'
{ "name": "scratch-app", "private": true, "version": "0.0.0" }
JSON
(cd "$app" && npm install "$tarball" --no-audit --no-fund --offline --silent)

echo "== require (CommonJS) and import (ESM)"
smoke='
  const keys = ["signToken", "signRequest", "verifySignature", "verifyEvents", "RelayServer", "RelayError"];
  for (const key of keys) if (typeof m[key] !== "function") throw new Error(`${key} is missing`);
  const token = await m.signToken({ secret: "s", sub: "alice", rooms: ["chat:*"], ttlSeconds: 60 });
  if (token.split(".").length !== 3) throw new Error("not a JWT");
  new m.RelayServer({ url: "https://relay.example.com", webhookSecret: "s" });'
(cd "$app" && "$node" -e "const m = require('@edge-relay/server'); (async () => { $smoke })().then(() => console.log('   require: ok'), (e) => { console.error(e); process.exit(1); });")
(cd "$app" && "$node" --input-type=module -e "import * as m from '@edge-relay/server'; $smoke console.log('   import: ok');")

echo "== typed usage compiles (tsc --noEmit)"
usage='import { RelayError, RelayServer, signToken, verifyEvents, verifySignature, type BroadcastOutcome, type RelayEvent } from "@edge-relay/server";

const relay = new RelayServer({ url: "https://relay.example.com", webhookSecret: "s", maxAttempts: 3 });

export async function main(): Promise<number> {
  const token: string = await signToken({ secret: "s", sub: "alice", rooms: ["chat:*"], ttlSeconds: 600 });
  const outcome: BroadcastOutcome = await relay.broadcast(["chat:1"], "order:new", { id: 42 }, { id: "order-42" });
  let delivered = 0;
  for (const result of outcome.results) {
    if (result.error) console.warn(result.room, result.error.code, result.error.message);
    else delivered += result.seq > 0 ? 1 : 0;
  }
  try {
    await relay.setMembers("chat:1", [{ id: "alice", role: "customer" }]);
  } catch (error) {
    if (RelayError.is(error) && error.code === "rate_limited") console.warn(error.retryAfterSeconds);
  }
  const ok: boolean = await verifySignature({ secret: "s", header: null, method: "POST", path: "/hook", body: "{}" });
  return delivered + (ok ? 1 : 0) + token.length;
}

export async function receive(request: Request, body: Uint8Array, header: string | string[] | undefined): Promise<number> {
  const events: RelayEvent<{ text: string }>[] = await verifyEvents<{ text: string }>(request, "s", { toleranceSeconds: 60 });
  let total = (await verifyEvents({ body, signature: header }, new Uint8Array([1]))).length;
  for (const event of events) {
    if (event.type === "message.created") total += event.seq + (event.message?.data.text.length ?? 0);
    else if (event.type === "presence.left") total += event.last_seen.length + event.user.id.length;
    else if (event.type === "message.edited") total += event.ref_seq + (event.message?.data.text.length ?? 0);
    else if (event.type === "message.unread") total += event.unread + event.seq;
  }
  return total;
}

// @ts-expect-error rooms is a list: the declarations are really read, not "any"
void signToken({ secret: "s", sub: "a", rooms: "chat:1", ttlSeconds: 60 });
'
printf '%s' "$usage" > "$app/usage.ts"
printf '%s' "$usage" > "$app/usage.mts"
printf '%s' "$usage" > "$app/usage.cts"
common='"strict": true, "noEmit": true, "target": "es2022", "lib": ["es2022", "dom"], "types": [], "skipLibCheck": false'
cat > "$app/tsconfig.bundler.json" <<JSON
{ "compilerOptions": { $common, "module": "esnext", "moduleResolution": "bundler" }, "files": ["usage.ts"] }
JSON
cat > "$app/tsconfig.node16.json" <<JSON
{ "compilerOptions": { $common, "module": "node16", "moduleResolution": "node16" }, "files": ["usage.mts", "usage.cts"] }
JSON
for config in bundler node16; do
  (cd "$app" && "${tsc[@]}" -p "tsconfig.$config.json") && echo "   $config: ok"
done

echo "== sizes"
echo "   tarball: $(wc -c < "$tarball") bytes"
echo "   dist/index.js: $(wc -c < "$package/dist/index.js") bytes, minified+gzipped: $("$esbuild" --minify --log-level=warning < "$package/dist/index.js" | gzip -9 | wc -c) bytes"

tree_after=$(git -C "$repo" status --porcelain)
if [ "$tree_after" != "$tree_before" ]; then
  echo "the check changed the working tree:"; diff <(echo "$tree_before") <(echo "$tree_after"); exit 1
fi
echo "== @edge-relay/server: ok"
