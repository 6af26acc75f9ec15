// Builds dist/: index.js (ESM) and index.cjs (CommonJS) with esbuild, the React bindings
// react.js and react.cjs and the Vue bindings vue.js and vue.cjs next to them, and the
// declarations with tsc, twice: *.d.ts for `import` and *.d.cts for `require` (the package is
// "type": "module", so a CommonJS consumer under node16 resolution needs CommonJS declarations).
// The ESM build is also the browser build the relay serves: client/relay.js, committed, byte for
// byte dist/index.js.
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
/**
 * The React and Vue bindings import the client from dist/index.(c)js instead of bundling a copy:
 * an app using both gets one RelayClient class (instanceof, one module state). React and Vue are
 * the app's.
 */
const shareCore = (ext) => ({
  name: 'share-core',
  setup(b) {
    b.onResolve({ filter: /^\.\/index\.js$/ }, (args) =>
      /(react|vue)\.ts$/.test(args.importer) ? { path: './index' + ext, external: true } : undefined,
    );
  },
});
const esm = { ...common, format: 'esm' };
const cjs = { ...common, format: 'cjs' };
const index = [join(root, 'src/index.ts')];
const react = [join(root, 'src/react.ts')];
const vue = [join(root, 'src/vue.ts')];
await build({ ...esm, entryPoints: index, outfile: join(dist, 'index.js'), banner: { js: banner } });
await build({ ...cjs, entryPoints: index, outfile: join(dist, 'index.cjs') });
await build({ ...esm, entryPoints: react, outfile: join(dist, 'react.js'), external: ['react'], plugins: [shareCore('.js')] });
await build({ ...cjs, entryPoints: react, outfile: join(dist, 'react.cjs'), external: ['react'], plugins: [shareCore('.cjs')] });
await build({ ...esm, entryPoints: vue, outfile: join(dist, 'vue.js'), external: ['vue'], plugins: [shareCore('.js')] });
await build({ ...cjs, entryPoints: vue, outfile: join(dist, 'vue.cjs'), external: ['vue'], plugins: [shareCore('.cjs')] });

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
