// build.mjs — the console's build: web/src → OUT (index.html, assets/app.js,
// assets/app-css.css, assets/THIRD-PARTY-LICENSES.txt), one bundle each, by
// esbuild. Nothing is fetched at run time: drover-web serves OUT at /
// (README "Web console"), so the console works on a cluster without
// internet. The licenses file holds the LICENSE of every npm package the
// bundle took code from (esbuild's metafile says which).
// Usage: node build.mjs OUT_DIR
import * as esbuild from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT_DIR');
  process.exit(2);
}
mkdirSync(join(out, 'assets'), { recursive: true });
const result = await esbuild.build({
  entryPoints: { app: join(here, 'src/app.js'), 'app-css': join(here, 'src/style.css') },
  bundle: true,
  minify: true,
  sourcemap: 'linked',
  format: 'esm',
  target: ['es2020'],
  outdir: join(out, 'assets'),
  entryNames: '[name]',
  logLevel: 'warning',
  legalComments: 'none',
  metafile: true,
});
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) packages.add(m[1]);
}
let licenses = 'Third-party code in assets/app.js (from npm, web/package-lock.json):\n';
for (const name of [...packages].sort()) {
  const dir = join(here, 'node_modules', name);
  const { version, license } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const file = ['LICENSE', 'LICENSE.md', 'LICENSE.txt'].map((f) => join(dir, f)).find(existsSync);
  if (!file) throw new Error(`${name}: no LICENSE file to ship with the bundle`);
  licenses += `\n==== ${name} ${version} (${license})\n\n${readFileSync(file, 'utf8')}`;
}
writeFileSync(join(out, 'assets', 'THIRD-PARTY-LICENSES.txt'), licenses);
copyFileSync(join(here, 'src/index.html'), join(out, 'index.html'));
