// Builds dist/: index.js (ESM) and index.cjs (CommonJS) with esbuild, and the declarations with
// tsc, twice: *.d.ts for `import` and *.d.cts for `require` (the package is "type": "module", so
// a CommonJS consumer under node16 resolution needs CommonJS declarations). The ESM build is also
// the browser build the relay serves: client/relay.js, committed, byte for byte dist/index.js.
// `--check` leaves client/relay.js alone and fails when it differs from this build.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const served = join(root, '../../client/relay.js');
const check = process.argv.includes('--check');
rmSync(dist, { recursive: true, force: true });

const banner =
  '// @edge-relay/client, built from packages/client/src by packages/client/scripts/build.mjs: do not edit.\n' +
  '// The relay serves this file at /client/relay.js; the same bytes are the package\'s ESM build.';
const common = {
  absWorkingDir: root, // the path comments in the output must not depend on where the build runs
  bundle: true,
  platform: 'neutral',
  target: 'es2022',
  sourcemap: false,
  logLevel: 'warning',
};
const entries = ['index'];
for (const entry of entries) {
  const entryPoints = [join(root, `src/${entry}.ts`)];
  await build({ ...common, entryPoints, format: 'esm', outfile: join(dist, `${entry}.js`), banner: { js: banner } });
  await build({ ...common, entryPoints, format: 'cjs', outfile: join(dist, `${entry}.cjs`) });
}

execFileSync(process.execPath, [resolveTsc(), '-p', join(root, 'tsconfig.json'), '--emitDeclarationOnly'], {
  stdio: 'inherit',
});
for (const name of readdirSync(dist).filter((n) => n.endsWith('.d.ts'))) {
  const text = readFileSync(join(dist, name), 'utf8').replace(/(['"])(\.\.?\/[^'"]+)\.js\1/g, '$1$2.cjs$1');
  writeFileSync(join(dist, name.replace(/\.d\.ts$/, '.d.cts')), text);
}

const browser = readFileSync(join(dist, 'index.js'), 'utf8');
if (!check) writeFileSync(served, browser);
else if (readFileSync(served, 'utf8') !== browser) {
  console.error('client/relay.js differs from a fresh build of packages/client: run node packages/client/scripts/build.mjs and commit it');
  process.exit(1);
}

/** TypeScript's compiler script, from the nearest node_modules up the tree. */
function resolveTsc() {
  return fileURLToPath(import.meta.resolve('typescript/lib/tsc.js'));
}
