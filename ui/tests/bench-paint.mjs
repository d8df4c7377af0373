// The browser viewer's ceiling for the native viewer's benchmark frames:
// the files `cargo bench -p rap-viewer --bench native_paint` writes to
// BENCH_FRAMES_DIR (whole 1920×1080 zlib binary_v1 updates), decoded with
// the viewer's own frames.js `decodeFrame` and painted with `putImageData`
// on a 1920×1080 canvas, in a loop, in headless Chromium (software
// rendering, as in bench-viewer.mjs). Run both with `bash viewer/bench.sh`.
//
//   BENCH_FRAMES_DIR=dir node ui/tests/bench-paint.mjs
//
// BENCH_SECONDS per case (default 5). CPU: Chromium's processes (user +
// system, from /proc), per frame painted.

import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { HERE, launchChromium } from './lib.mjs';

const DIR = process.env.BENCH_FRAMES_DIR;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CLK_TCK = 100;
const ORIGIN = 'http://bench.invalid';
if (!DIR) {
  console.error('bench-paint: set BENCH_FRAMES_DIR to the native bench frames');
  process.exit(2);
}

/** utime + stime ticks of `root` and every process under it. */
async function treeTicks(root) {
  const parent = new Map();
  const ticks = new Map();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = await readFile(`/proc/${name}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(name), Number(fields[1]));
      ticks.set(Number(name), Number(fields[11]) + Number(fields[12]));
    } catch {
      /* gone meanwhile */
    }
  }
  let sum = 0;
  for (const [pid, value] of ticks) {
    for (let at = pid; at; at = parent.get(at) ?? 0) {
      if (at === root) {
        sum += value;
        break;
      }
    }
  }
  return sum;
}

const browser = await launchChromium('bench-paint');
const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
// The viewer's modules, served from ui/ without an appliance.
await page.route(`${ORIGIN}/**`, async (route) => {
  const name = new URL(route.request().url()).pathname.slice(1) || 'index.html';
  if (name === 'index.html') return route.fulfill({ contentType: 'text/html', body: '<!doctype html><canvas id="c" width="1920" height="1080"></canvas>' });
  return route.fulfill({ contentType: 'text/javascript', body: await readFile(path.join(HERE, '..', path.basename(name)), 'utf8') });
});
await page.goto(`${ORIGIN}/`);
/** Chromium's ticks: Playwright starts it under this script, so everything under it but the script itself. */
async function chromiumTicks() {
  const text = await readFile('/proc/self/stat', 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (await treeTicks(process.pid)) - (Number(fields[11]) + Number(fields[12]));
}

console.log(`browser viewer (Chromium, software), the native bench's frames decoded (frames.js decodeFrame) + painted (putImageData) in a loop, ${SECONDS} s per case`);
console.log('| content | bytes/frame | canvas | frames/s | decode | paint | Chromium CPU per frame |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const [name, file] of [['one colour (test server)', 'flat'], ['gradient (scripted)', 'gradient']]) {
  const frames = await Promise.all([1, 2].map(async (n) => (await readFile(path.join(DIR, `${file}-${n}.bin`))).toString('base64')));
  const cpuBefore = await chromiumTicks();
  const result = await page.evaluate(
    async ({ frames, seconds }) => {
      const { decodeFrame } = await import('/frames.js');
      const buffers = frames.map((text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer);
      const context = /** @type {HTMLCanvasElement} */ (document.getElementById('c')).getContext('2d');
      let count = 0;
      let decoding = 0;
      let painting = 0;
      const start = performance.now();
      while (performance.now() - start < seconds * 1000) {
        const began = performance.now();
        // decodeFrame may keep a view into its input: give it a copy, as a socket would.
        const frame = await decodeFrame(buffers[count % 2].slice(0));
        const decoded = performance.now();
        context.putImageData(new ImageData(frame.rgba, frame.width, frame.height), frame.x, frame.y);
        painting += performance.now() - decoded;
        decoding += decoded - began;
        count += 1;
      }
      const wall = (performance.now() - start) / 1000;
      return { fps: count / wall, decodeMs: decoding / count, paintMs: painting / count, count, wall };
    },
    { frames, seconds: SECONDS },
  );
  const cpuMs = (((await chromiumTicks()) - cpuBefore) * 1000) / CLK_TCK / result.count;
  const bytes = Buffer.from(frames[0], 'base64').length;
  console.log(`| ${name} | ${Math.floor(bytes / 1024)} KiB | 1920×1080 | ${result.fps.toFixed(1)} | ${result.decodeMs.toFixed(2)} ms | ${result.paintMs.toFixed(2)} ms | ${cpuMs.toFixed(2)} ms |`);
}
await browser.close();
