// Builds dist/: index.js (ESM) and index.cjs (CommonJS) with esbuild, and the declarations with
// tsc, twice: *.d.ts for `import` and *.d.cts for `require`. The package is "type": "module",
// so TypeScript reads a .d.ts in it as ESM; a CommonJS consumer under node16 resolution needs
// CommonJS declarations (.d.cts, whose relative imports name .cjs) or it is told that it
// cannot require an ES module.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });

const common = {
  entryPoints: [join(root, 'src/index.ts')],
  bundle: true,
  platform: 'neutral',
  target: 'es2022',
  sourcemap: false,
  logLevel: 'warning',
};
await build({ ...common, format: 'esm', outfile: join(dist, 'index.js') });
await build({ ...common, format: 'cjs', outfile: join(dist, 'index.cjs') });

execFileSync(process.execPath, [resolveTsc(), '-p', join(root, 'tsconfig.json'), '--emitDeclarationOnly'], {
  stdio: 'inherit',
});
for (const name of readdirSync(dist).filter((n) => n.endsWith('.d.ts'))) {
  const text = readFileSync(join(dist, name), 'utf8').replace(/(['"])(\.\.?\/[^'"]+)\.js\1/g, '$1$2.cjs$1');
  writeFileSync(join(dist, name.replace(/\.d\.ts$/, '.d.cts')), text);
}

/** TypeScript's compiler script, from the nearest node_modules up the tree. */
function resolveTsc() {
  return fileURLToPath(import.meta.resolve('typescript/lib/tsc.js'));
}
