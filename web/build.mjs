// build.mjs — the console's build: web/src → OUT (index.html, assets/app.js,
// assets/app.css), one bundle each, by esbuild. Nothing is fetched at run
// time: drover-web serves OUT at / (README "Web console"), so the console
// works on a cluster without internet. Usage: node build.mjs OUT_DIR
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT_DIR');
  process.exit(2);
}
mkdirSync(join(out, 'assets'), { recursive: true });
await esbuild.build({
  entryPoints: { app: join(here, 'src/app.js'), 'app-css': join(here, 'src/style.css') },
  bundle: true,
  minify: true,
  sourcemap: 'linked',
  format: 'esm',
  target: ['es2020'],
  outdir: join(out, 'assets'),
  entryNames: '[name]',
  logLevel: 'warning',
  legalComments: 'linked',
});
copyFileSync(join(here, 'src/index.html'), join(out, 'index.html'));
