// Builds the JavaScript example into a `wasi:http/proxy` component with
// componentize-js (SpiderMonkey, pre-initialised with Wizer).
//
//   npm ci && node build.mjs [OUT]     (OUT defaults to dist/js_hello.wasm)
//
// Paths are relative to this file, not to the working directory. The output
// is written to a temporary file and renamed, so an interrupted build never
// leaves a truncated component behind.

import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, 'dist', 'js_hello.wasm'));

const { component } = await componentize({
  sourcePath: join(here, 'src', 'hello.js'),
  witPath: join(here, 'wit'),
  worldName: 'hello',
});

await mkdir(dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
await writeFile(tmp, component);
await rename(tmp, out);
console.log(`wrote ${out} (${component.length} bytes)`);
