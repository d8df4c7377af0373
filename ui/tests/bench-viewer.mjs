// Viewer benchmark: frames the web viewer paints per second in headless
// Chromium for a 1920×1080 RDP session whose whole screen changes
// continuously (the RDP test server with `animate=full`), against the
// updates the appliance decoded from the server in the same window.
//
//   ui/tests/run-rdp.sh --bench path/to/rap-appliance path/to/rdp-test-server-release
//
// or, against a fresh appliance (RAP_WORKER_RUNTIME=rdp, development mode)
// and a test server already running (`security=hybrid user=test
// password=secret size=1920x1080 animate=full`):
//
//   RAP_URL=http://127.0.0.1:18080 RDP_PORT=<its port> node bench-viewer.mjs
//
// Settings: BENCH_SECONDS (each measured window, default 10), BENCH_WINDOWS
// (default 3), BENCH_WARMUP (seconds after the first frame, default 3),
// BENCH_IDLE_WAIT (seconds to wait, before each window, for other processes
// on the machine to go quiet; default 0 = measure at once and report their
// load). RAP_APPLIANCE_PID and RDP_SERVER_PID (run-rdp.sh sets them) add the
// CPU time of those processes.
//
// Live windows count, in the page (through the viewer's test handle
// `rapViewer`, by wrapping its screen's `onFrame` and `paint`, viewer-screen.js):
// - received: binary frame messages (rectangles) that reached `onFrame`;
// - painted: rectangles with the `last` flag painted by `paint`
//   (`putImageData`), i.e. complete screen updates on the canvas (what the
//   toolbar's fps shows);
// - shown: animation frames (requestAnimationFrame ticks) in which the
//   canvas had changed since the previous tick, i.e. what could reach the
//   screen (at most the display rate, 60/s);
// and from the appliance's GET /metrics: rap_screen_updates_total (updates
// decoded from the RDP server into the session's screen) and
// rap_frames_sent_total / rap_frame_bytes_sent_total (to the viewer).
// CPU: user + system time from /proc over the window, 100 % = one core.
//
// The viewer decodes frames in a Web Worker (frame-pipeline.js, which also
// drops a frame still waiting to be decoded when the next one covers it
// whole): "dropped" counts those, and the queue growth leaves them out.
//
// Baselines (the viewer's ceiling in this browser), after the session
// ends, with no network, appliance and server idle, on a 1920×1080 canvas:
// - decode + paint: the last full-screen frame the viewer received is
//   decoded on the main thread (frames.js decodeFrame) then painted
//   (putImageData), one after another for one window: the decode cost;
// - pipeline: the same frame fed again and again to the viewer's own
//   pipeline (decoded in its worker, painted on the main thread), two in
//   flight at a time, as the viewer decodes a stream of frames.
//
// The last line is `bench: N passed, M failed`.

import { readFile, readdir } from 'node:fs/promises';
import * as lib from './lib.mjs';
import { assert, until, heading, row, apiCall, sleep } from './lib.mjs';

const LABEL = 'bench';
const BASE = lib.baseUrl(LABEL);
const RDP_PORT = Number(process.env.RDP_PORT);
if (!RDP_PORT) {
  console.error('bench-viewer: set RDP_PORT (the test server’s port); run-rdp.sh --bench does');
  console.log(`${LABEL}: 0 passed, 1 failed`);
  process.exit(2);
}
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WINDOWS = Number(process.env.BENCH_WINDOWS ?? 3);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const IDLE_WAIT = Number(process.env.BENCH_IDLE_WAIT ?? 0);
const APPLIANCE_PID = Number(process.env.RAP_APPLIANCE_PID) || null;
const SERVER_PID = Number(process.env.RDP_SERVER_PID) || null;
const SIZE = { width: 1920, height: 1080 };
// viewer-screen.js windowSize(): the session gets the window less 18 × 190 px of bars.
const VIEWPORT = { width: SIZE.width + 18, height: SIZE.height + 190 };
const CONNECT_TIMEOUT = 60_000;

const OWNER = { email: 'owner@example.com', name: 'Olivia Owner', password: 'correct horse battery staple' };

let browser;
let page;
const { step, screenshot, finish } = lib.createRun({ label: LABEL, prefix: 'bench-', failurePrefix: 'bench-failure', pages: () => [page] });

// ------------------------------------------------------------------ /proc

const CLK_TCK = 100; // getconf CLK_TCK on Linux

/** `[pid, ppid, ticks]` of every process (utime + stime, all threads). */
async function processes() {
  const all = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = await readFile(`/proc/${name}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      // After the command: state(0) ppid(1) … utime(11) stime(12).
      all.push([Number(name), Number(fields[1]), Number(fields[11]) + Number(fields[12])]);
    } catch {
      /* gone meanwhile */
    }
  }
  return all;
}

/** The machine's busy ticks (all cores) from /proc/stat. */
async function machineBusy() {
  const [cpu] = (await readFile('/proc/stat', 'utf8')).split('\n');
  const [user, nice, system, , , irq, softirq, steal] = cpu.trim().split(/\s+/).slice(1).map(Number);
  return user + nice + system + irq + softirq + steal;
}

/**
 * CPU ticks so far of: the appliance, the server, Chromium (the processes
 * under this script: Playwright starts the browser as its child), this
 * script, the whole machine; with the time they were read.
 */
async function cpuSnapshot() {
  const at = performance.now();
  const all = await processes();
  const children = new Map();
  for (const [pid, ppid] of all) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const ticks = new Map(all.map(([pid, , t]) => [pid, t]));
  const tree = (root) => {
    let sum = 0;
    const stack = [root];
    while (stack.length) {
      const pid = stack.pop();
      sum += ticks.get(pid) ?? 0;
      stack.push(...(children.get(pid) ?? []));
    }
    return sum;
  };
  const harness = ticks.get(process.pid) ?? 0;
  return {
    at: (at + performance.now()) / 2,
    appliance: APPLIANCE_PID ? (ticks.get(APPLIANCE_PID) ?? 0) : null,
    server: SERVER_PID ? (ticks.get(SERVER_PID) ?? 0) : null,
    chromium: tree(process.pid) - harness,
    harness,
    machine: await machineBusy(),
  };
}

const OURS = ['appliance', 'server', 'chromium', 'harness'];

/** CPU shares (percent of one core) between two snapshots; `others` = the machine less ours. */
function cpuShares(a, b) {
  const seconds = (b.at - a.at) / 1000;
  const share = (ticks) => (100 * ticks) / CLK_TCK / seconds;
  const result = {};
  for (const key of [...OURS, 'machine']) result[key] = a[key] === null ? null : share(b[key] - a[key]);
  // Read at slightly different moments, the difference can dip below zero: clamp.
  result.others = Math.max(0, share(b.machine - a.machine - OURS.reduce((sum, key) => sum + ((b[key] ?? 0) - (a[key] ?? 0)), 0)));
  return result;
}

// ---------------------------------------------------------------- metrics

async function metrics() {
  const text = await (await fetch(`${BASE}/metrics`)).text();
  const value = (name) => {
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : NaN;
  };
  return { decoded: value('rap_screen_updates_total'), sentRects: value('rap_frames_sent_total'), sentBytes: value('rap_frame_bytes_sent_total') };
}

// ----------------------------------------------------------------- page

/**
 * Counters in the page, through the viewer's test handle: wraps its
 * `onFrame` and `paint`, and counts animation frames. Keeps the last
 * full-screen frame message received (for the baseline).
 */
function instrument() {
  return page.evaluate((size) => {
    const viewer = document.getElementById('viewer').rapViewer;
    const { screen } = viewer;
    const counters = { received: 0, rects: 0, updates: 0, pixels: 0, paintMs: 0, ticks: 0, shown: 0 };
    const onFrame = screen.onFrame.bind(screen);
    screen.onFrame = (buffer) => {
      counters.received += 1;
      const view = new DataView(buffer);
      // A copy: the viewer hands the buffer over to its decoder (detached after).
      if (view.getUint16(16, true) === size.width && view.getUint16(18, true) === size.height) window.__benchSample = buffer.slice(0);
      onFrame(buffer);
    };
    const paint = screen.paint.bind(screen);
    screen.paint = (frame) => {
      const t0 = performance.now();
      paint(frame);
      counters.paintMs += performance.now() - t0;
      counters.rects += 1;
      counters.pixels += frame.width * frame.height;
      if (frame.last) counters.updates += 1;
    };
    let seen = screen.frames;
    const tick = () => {
      counters.ticks += 1;
      if (screen.frames !== seen) {
        seen = screen.frames;
        counters.shown += 1;
      }
      if (!viewer.destroyed) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    window.__bench = counters;
  }, SIZE);
}

/** The page's counters and the appliance's metrics, with the time they were read. */
async function liveSnapshot() {
  const t0 = performance.now();
  const [counters, appliance] = await Promise.all([
    page.evaluate(() => {
      const pipeline = document.getElementById('viewer')?.rapViewer.screen.pipeline;
      return { ...window.__bench, dropped: pipeline?.dropped ?? 0, resyncs: pipeline?.resyncs ?? 0 };
    }),
    metrics(),
  ]);
  return { at: (t0 + performance.now()) / 2, counters, appliance };
}

/**
 * A baseline: the kept frame message decoded and painted (putImageData) in
 * a loop for `seconds`, on a canvas the size of the viewer's, shown at the
 * same size; `mode` 'main': decoded on the main thread (frames.js), one
 * after another; 'pipeline': through the viewer's pipeline (its worker),
 * two in flight.
 */
function replay(seconds, mode) {
  return page.evaluate(
    async ({ seconds, size, mode }) => {
      const buffer = window.__benchSample;
      if (!buffer) throw new Error('no full-screen frame was kept');
      const { decodeFrame } = await import('/frames.js');
      const { FramePipeline } = await import('/frame-pipeline.js');
      const canvas = document.createElement('canvas');
      canvas.width = size.width;
      canvas.height = size.height;
      Object.assign(canvas.style, { position: 'fixed', left: '0', top: '0', width: `${size.width}px`, height: `${size.height}px`, zIndex: '1000' });
      document.body.append(canvas);
      const context = canvas.getContext('2d', { alpha: false });
      let painted = 0;
      let ticks = 0;
      let shown = 0;
      let seen = 0;
      let paintMs = 0;
      let running = true;
      const tick = () => {
        ticks += 1;
        if (painted !== seen) {
          seen = painted;
          shown += 1;
        }
        if (running) requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
      let start = performance.now();
      let end = start + seconds * 1000;
      let decodeMs = 0;
      let decoder = 'main';
      if (mode === 'pipeline') {
        let finish;
        const finished = new Promise((resolve) => (finish = resolve));
        let pushed = 0;
        const pipeline = new FramePipeline({
          paint: (frame) => {
            const t0 = performance.now();
            context.putImageData(new ImageData(frame.rgba, frame.width, frame.height), frame.x, frame.y);
            paintMs += performance.now() - t0;
            painted += 1;
            if (performance.now() < end) {
              pipeline.push(buffer.slice(0));
              pushed += 1;
            } else if (painted === pushed) finish();
          },
          fail: (error) => finish(error),
          resync: () => {},
        });
        // Let the worker start, as it has long before a session's first frame.
        for (let wait = 0; pipeline.worker && pipeline.decoder !== 'worker' && wait < 100; wait += 1) await new Promise((resolve) => setTimeout(resolve, 10));
        decoder = pipeline.decoder;
        start = performance.now();
        end = start + seconds * 1000;
        ticks = 0;
        shown = 0;
        for (; pushed < 2; pushed += 1) pipeline.push(buffer.slice(0));
        const error = await finished;
        pipeline.close();
        if (error) throw error;
      } else {
        // DecompressionStream can finish within microtasks: yield a task between
        // frames (as frames arriving from the socket do) so that the page renders.
        const channel = new MessageChannel();
        const yieldTask = () => new Promise((resolve) => {
          channel.port1.onmessage = resolve;
          channel.port2.postMessage(null);
        });
        while (performance.now() < end) {
          await yieldTask();
          const d0 = performance.now();
          const frame = await decodeFrame(buffer);
          const t0 = performance.now();
          decodeMs += t0 - d0;
          context.putImageData(new ImageData(frame.rgba, frame.width, frame.height), frame.x, frame.y);
          paintMs += performance.now() - t0;
          painted += 1;
        }
      }
      running = false;
      const elapsed = (performance.now() - start) / 1000;
      canvas.remove();
      return { decoder, seconds: elapsed, painted: painted / elapsed, shown: shown / elapsed, ticks: ticks / elapsed, paintMs: paintMs / painted, decodeMs: decodeMs / painted, bytes: buffer.byteLength };
    },
    { seconds, size: SIZE, mode },
  );
}

/** A few pixels of the canvas (the animation paints one colour over the screen). */
const sample = () => lib.pixels(page, [[10, 10], [960, 540], [1900, 1060]]);

const connected = () => lib.waitSessionConnected(page, CONNECT_TIMEOUT);

/** Waits (up to BENCH_IDLE_WAIT s) for other processes to use under 15 % of a core. */
async function waitForQuiet() {
  if (IDLE_WAIT <= 0) return;
  const deadline = Date.now() + IDLE_WAIT * 1_000;
  for (;;) {
    const a = await cpuSnapshot();
    await sleep(1_000);
    const others = cpuShares(a, await cpuSnapshot()).others;
    if (others < 15) return;
    if (Date.now() > deadline) {
      console.log(`     other processes still use ${fmt(others, 0)} % of a core; measuring anyway`);
      return;
    }
  }
}

// ------------------------------------------------------------------ run

const fmt = (value, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const median = (values) => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!sorted.length) return NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

browser = await lib.launchChromium(LABEL);
page = await lib.openPage(browser, VIEWPORT, 'bench');

await step('set up: owner (first run page), organization, resource and secret (API)', async () => {
  await lib.bootstrapOwner(page, BASE, OWNER);
  const token = await lib.accessToken(page);
  assert(token, 'an access token in rap.auth');
  const me = await apiCall(BASE, 'GET', '/auth/me', { token });
  const organization = await apiCall(BASE, 'POST', '/organizations', { token, body: { name: 'Bench', slug: 'bench' } });
  await apiCall(BASE, 'POST', `/organizations/${organization.id}/memberships`, { token, body: { user_id: me.user.id, role: 'org_owner' } });
  const resource = await apiCall(BASE, 'POST', '/resources', {
    token,
    body: { organization_id: organization.id, name: 'Full-screen animation', protocol: 'rdp', host: '127.0.0.1', port: RDP_PORT, certificate_verification_mode: 'ignore' },
  });
  await apiCall(BASE, 'PUT', `/resources/${resource.id}/secret`, { token, body: { username: 'test', password: 'secret' } });
});

await step(`connect from My desktops at ${SIZE.width}×${SIZE.height}: the animation is painted`, async () => {
  // The page is already on My desktops: load it again to list the new resource.
  await page.reload();
  await heading(page, 'My desktops');
  await row(page, 'Full-screen animation').getByRole('button', { name: 'Connect' }).click();
  await connected();
  const canvas = await page.evaluate(() => {
    const element = document.getElementById('remote-canvas');
    const rect = element.getBoundingClientRect();
    return { width: element.width, height: element.height, cssWidth: rect.width, cssHeight: rect.height };
  });
  assert(canvas.width === SIZE.width && canvas.height === SIZE.height, `canvas ${canvas.width}×${canvas.height}`);
  console.log(`     canvas ${canvas.width}×${canvas.height}, shown at ${fmt(canvas.cssWidth, 0)}×${fmt(canvas.cssHeight, 0)} CSS px`);
  await instrument();
  // The animation paints one colour over the whole screen, changing every update.
  const first = await sample();
  await until('the canvas changing', async () => JSON.stringify(await sample()) !== JSON.stringify(first), 20_000);
  const now = await sample();
  assert(now.every((pixel) => pixel.slice(0, 3).some((value) => value > 0)), `painted, not black: ${JSON.stringify(now)}`);
  await page.evaluate(() => document.getElementById('toasts')?.replaceChildren());
  await screenshot(page, 'viewer');
});

const windows = [];
await step(`live: ${WINDOWS} window(s) of ${SECONDS} s after ${WARMUP} s of warm-up`, async () => {
  await sleep(WARMUP * 1_000);
  for (let index = 0; index < WINDOWS; index += 1) {
    await waitForQuiet();
    const [l0, c0] = await Promise.all([liveSnapshot(), cpuSnapshot()]);
    await sleep(SECONDS * 1_000);
    const [l1, c1] = await Promise.all([liveSnapshot(), cpuSnapshot()]);
    const seconds = (l1.at - l0.at) / 1000;
    const rate = (pick) => (pick(l1) - pick(l0)) / seconds;
    const result = {
      seconds,
      decoded: rate((s) => s.appliance.decoded),
      sentRects: rate((s) => s.appliance.sentRects),
      mbits: (rate((s) => s.appliance.sentBytes) * 8) / 1e6,
      bytesPerRect: (l1.appliance.sentBytes - l0.appliance.sentBytes) / Math.max(1, l1.appliance.sentRects - l0.appliance.sentRects),
      received: rate((s) => s.counters.received),
      rects: rate((s) => s.counters.rects),
      painted: rate((s) => s.counters.updates),
      megapixels: rate((s) => s.counters.pixels) / 1e6,
      paintMs: (l1.counters.paintMs - l0.counters.paintMs) / Math.max(1, l1.counters.rects - l0.counters.rects),
      shown: rate((s) => s.counters.shown),
      ticks: rate((s) => s.counters.ticks),
      // Received but not painted yet, growth over the window (0: the viewer keeps up).
      // Dropped: never decoded, painted over by the next frame (frame-pipeline.js).
      dropped: l1.counters.dropped - l0.counters.dropped,
      resyncs: l1.counters.resyncs - l0.counters.resyncs,
      queueGrowth:
        l1.counters.received - l0.counters.received - (l1.counters.rects - l0.counters.rects) - (l1.counters.dropped - l0.counters.dropped),
      cpu: cpuShares(c0, c1),
    };
    result.ratio = result.painted / result.decoded;
    windows.push(result);
    const { cpu } = result;
    console.log(
      `     window ${index + 1}: ${fmt(seconds, 2)} s; appliance decoded ${fmt(result.decoded)}/s, sent ${fmt(result.sentRects)} rects/s ` +
        `(${fmt(result.bytesPerRect / 1024, 1)} KiB each, ${fmt(result.mbits, 2)} Mbit/s); viewer received ${fmt(result.received)}/s, ` +
        `painted ${fmt(result.painted)} updates/s (${fmt(result.rects)} rects/s, ${fmt(result.megapixels)} Mpx/s, putImageData ${fmt(result.paintMs, 2)} ms), ` +
        `painted/decoded ${fmt(100 * result.ratio, 0)} %, shown ${fmt(result.shown)}/s of ${fmt(result.ticks)} rAF/s, dropped ${result.dropped} (covered; ${result.resyncs} resyncs), queue growth ${result.queueGrowth >= 0 ? '+' : ''}${result.queueGrowth}; ` +
        `CPU appliance ${fmt(cpu.appliance, 0)} %, server ${fmt(cpu.server, 0)} %, Chromium ${fmt(cpu.chromium, 0)} %, ` +
        `harness ${fmt(cpu.harness, 0)} %, others ${fmt(cpu.others, 0)} %, machine ${fmt(cpu.machine, 0)} % of 200 %`,
    );
  }
  // A window without a paint is a result (printed above), not an error; nothing painted at all is.
  assert(windows.some((result) => result.painted > 0), 'the viewer painted nothing in any window');
});

await step('terminate the session', async () => {
  await page.getByRole('button', { name: 'Terminate' }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: 'Terminate' }).click();
  await heading(page, 'My desktops');
});

const baselines = [];
for (const [mode, title] of [
  ['main', 'the last frame decoded (main thread) and painted in a loop'],
  ['pipeline', 'the last frame through the viewer’s pipeline (worker) and painted'],
]) {
  await step(`baseline: ${title} in the page for ${SECONDS} s`, async () => {
    await sleep(1_000); // the appliance and the server wind down
    await waitForQuiet();
    const c0 = await cpuSnapshot();
    const baseline = await replay(SECONDS, mode);
    baseline.mode = mode;
    baseline.cpu = cpuShares(c0, await cpuSnapshot());
    const decode = mode === 'main' ? `decodeFrame ${fmt(baseline.decodeMs, 2)} ms, ` : `decoded in the ${baseline.decoder === 'worker' ? 'worker' : 'main thread (no worker)'}, `;
    console.log(
      `     ${fmt(baseline.seconds, 2)} s: painted ${fmt(baseline.painted)}/s (${decode}putImageData ${fmt(baseline.paintMs, 2)} ms), ` +
        `shown ${fmt(baseline.shown)}/s of ${fmt(baseline.ticks)} rAF/s, frame ${fmt(baseline.bytes / 1024, 1)} KiB; ` +
        `CPU Chromium ${fmt(baseline.cpu.chromium, 0)} %, appliance ${fmt(baseline.cpu.appliance, 0)} %, server ${fmt(baseline.cpu.server, 0)} %, others ${fmt(baseline.cpu.others, 0)} %`,
    );
    assert(baseline.painted > 0, 'the loop painted');
    baselines.push(baseline);
  });
}

if (windows.length) {
  const m = (pick) => median(windows.map(pick));
  console.log('');
  console.log(`${SIZE.width}×${SIZE.height}, full-screen damage; live: median of ${windows.length} window(s) of ${SECONDS} s`);
  console.log('| case | decoded by the appliance | painted by the viewer | painted / decoded | shown (rAF with a change) | rAF/s | putImageData | CPU appliance | CPU server | CPU Chromium | CPU others |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const b of baselines) {
    const label = b.mode === 'main' ? 'baseline: one frame decoded + painted in a loop' : 'baseline: one frame through the viewer pipeline (worker), 2 in flight';
    console.log(
      `| ${label} | – | ${fmt(b.painted)}/s | – | ${fmt(b.shown)}/s | ${fmt(b.ticks)} | ${fmt(b.paintMs, 2)} ms | ` +
        `${fmt(b.cpu.appliance, 0)} % | ${fmt(b.cpu.server, 0)} % | ${fmt(b.cpu.chromium, 0)} % | ${fmt(b.cpu.others, 0)} % |`,
    );
  }
  console.log(
    `| live session | ${fmt(m((r) => r.decoded))}/s | ${fmt(m((r) => r.painted))}/s | ${fmt(100 * m((r) => r.ratio), 0)} % | ${fmt(m((r) => r.shown))}/s | ${fmt(m((r) => r.ticks))} | ` +
      `${fmt(m((r) => r.paintMs), 2)} ms | ${fmt(m((r) => r.cpu.appliance), 0)} % | ${fmt(m((r) => r.cpu.server), 0)} % | ` +
      `${fmt(m((r) => r.cpu.chromium), 0)} % | ${fmt(m((r) => r.cpu.others), 0)} % |`,
  );
  console.log('(CPU: 100 % = one core of the 2; "others" = the machine less the appliance, the server, Chromium and this script)');
}

await finish(browser);
