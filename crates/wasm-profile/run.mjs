// Times (and with --cpu-prof, profiles) the folded CPU path in wasm under Node.js:
//   cargo build --profile wasm-release --target wasm32-unknown-unknown -p wasm-profile
//   wasm-bindgen --target nodejs --out-dir target/wasm-profile \
//     target/wasm32-unknown-unknown/wasm-release/wasm_profile.wasm
//   node crates/wasm-profile/run.mjs MODEL.bpk [BATCH=8] [ITERS=4] [--cpu-prof]
// With --cpu-prof, the run is profiled and the functions with the most samples are printed
// (wasm functions by their Rust names).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Session } from 'node:inspector/promises';

const args = process.argv.slice(2).filter((a) => a !== '--cpu-prof');
const profile = process.argv.includes('--cpu-prof');
const [model, batch = '8', iters = '4'] = args;
if (!model) {
  console.error('usage: node crates/wasm-profile/run.mjs MODEL.bpk [BATCH] [ITERS] [--cpu-prof]');
  process.exit(2);
}
const require = createRequire(import.meta.url);
const wasm = require(path.resolve('target/wasm-profile/wasm_profile.js'));
const bytes = fs.readFileSync(model);

let session;
if (profile) {
  session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
}
let rate;
try {
  rate = wasm.crops_per_second(bytes, Number(batch), Number(iters));
} catch (e) {
  console.error(`${model}: ${e.message}`);
  process.exit(1);
}
console.log(`${path.basename(model)}: folded CPU path in wasm under Node.js ${process.version} (batch ${batch}, ${iters} timed, ${os.cpus()[0].model}): ${rate.toFixed(2)} crops/s`);
if (profile) {
  const { profile: p } = await session.post('Profiler.stop');
  const names = new Map(p.nodes.map((n) => [n.id, n.callFrame.functionName || '(anonymous)']));
  const counts = new Map();
  for (const id of p.samples) counts.set(names.get(id), (counts.get(names.get(id)) ?? 0) + 1);
  const total = p.samples.length;
  for (const [name, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
    console.log(`${((100 * n) / total).toFixed(1).padStart(5)}%  ${name.replace(/::h[0-9a-f]{16}$/, '')}`);
  }
}
