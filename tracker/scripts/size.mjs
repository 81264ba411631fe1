// Minify motwatch.js with terser and print its minified and gzipped sizes; exit 1 over the budget.
// Usage: node scripts/size.mjs [--out FILE]   (after `npm ci` in tracker/)
import { readFile, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { minify } from 'terser';

const BUDGET = 5000; // bytes of minified JavaScript (5 KB, counted the strict way)

const source = await readFile(fileURLToPath(new URL('../motwatch.js', import.meta.url)), 'utf8');
const { code } = await minify(source, {
  ecma: 2017,
  compress: { passes: 2 },
  mangle: true,
  format: { comments: false },
});
const minified = Buffer.byteLength(code);
const gzipped = gzipSync(code, { level: 9 }).length;
console.log(`motwatch.js: source ${Buffer.byteLength(source)} B, minified ${minified} B, gzipped ${gzipped} B (budget ${BUDGET} B minified)`);

const out = process.argv.indexOf('--out');
if (out > 0) await writeFile(process.argv[out + 1], code);
if (minified > BUDGET) {
  console.error(`over budget by ${minified - BUDGET} B`);
  process.exit(1);
}
