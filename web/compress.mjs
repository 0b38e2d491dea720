// Gzips the built app's assets in place (dist/app/assets/x.js becomes
// x.js.gz), so that the control plane embeds, and sends, about a quarter
// of the bytes: web/embed.go serves the .gz with Content-Encoding: gzip,
// or inflates it for a client that does not accept gzip. index.html and
// files too small to gain stay as they are.
import { gzipSync, constants } from 'node:zlib';
import { readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL('./dist/app/assets/', import.meta.url).pathname;
const compressible = /\.(js|mjs|css|svg|json|map|ttf|wasm|txt)$/;
let before = 0;
let after = 0;
for (const name of readdirSync(dir)) {
  const file = join(dir, name);
  if (!compressible.test(name) || !statSync(file).isFile()) continue;
  const data = readFileSync(file);
  const packed = gzipSync(data, { level: constants.Z_BEST_COMPRESSION });
  if (data.length < 1024 || packed.length >= data.length * 0.9) continue;
  writeFileSync(file + '.gz', packed);
  unlinkSync(file);
  before += data.length;
  after += packed.length;
}
console.log(`gzipped assets: ${(before / 1048576).toFixed(1)} MiB -> ${(after / 1048576).toFixed(1)} MiB`);
