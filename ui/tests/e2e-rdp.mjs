// End-to-end test of the web UI against a real RDP desktop, in headless
// Chromium: the RDP test server (testing/rdp-test-server, IronRDP's server
// crate) behind an appliance with the RDP worker runtime. First run, an
// organization and a resource for the server with its secret (through the
// admin pages), a session from "My desktops", the server's desktop on the
// canvas (every pixel compared with its pattern), keys and clicks arriving
// at the server (its `INPUT ...` lines), detach and resume (the RDP
// connection stays up), terminate (the connection ends).
//
//   ui/tests/run-rdp.sh path/to/rap-appliance path/to/rdp-test-server
//
// or, against a fresh appliance (RAP_WORKER_RUNTIME=rdp, development mode)
// and a test server already running (`security=hybrid user=test
// password=secret codecs=remotefx:off`, stdout to a file):
//
//   RAP_URL=http://127.0.0.1:18080 RDP_PORT=<its port> RDP_SERVER_LOG=<its stdout> node e2e-rdp.mjs
//
// Screenshots go to ./artifacts/rdp-*.png. The last line is
// `e2e: N passed, M failed` (the same format as e2e.mjs).

import { readFile } from 'node:fs/promises';
import * as lib from './lib.mjs';
import { TIMEOUT, pattern, assert, until, heading, nav, row, clientPoint, apiCall } from './lib.mjs';

const LABEL = 'e2e';
const BASE = lib.baseUrl(LABEL);
const RDP_PORT = Number(process.env.RDP_PORT);
const SERVER_LOG = process.env.RDP_SERVER_LOG;
if (!RDP_PORT || !SERVER_LOG) {
  console.error('e2e-rdp: set RDP_PORT and RDP_SERVER_LOG (the test server’s port and stdout file); run-rdp.sh does');
  console.log(`${LABEL}: 0 passed, 1 failed`);
  process.exit(2);
}
/** A real RDP connection takes longer than the scripted desktop (NLA, capability exchange; debug builds). */
const CONNECT_TIMEOUT = 45_000;

const OWNER = { email: 'owner@example.com', name: 'Olivia Owner', password: 'correct horse battery staple' };
const ORG = { name: 'RDP Lab' };
const RESOURCE = { name: 'RDP test server', host: '127.0.0.1', username: 'test', password: 'secret' };
const VIEWPORT = { width: 1280, height: 860 };

let browser;
let page;
const { step, screenshot, finish } = lib.createRun({ label: LABEL, prefix: 'rdp-', failurePrefix: 'rdp-failure', pages: () => [page] });

// --------------------------------------------------------------- helpers

/** The test server's stdout so far, as lines. */
async function serverLines() {
  return (await readFile(SERVER_LOG, 'utf8')).split('\n').filter(Boolean);
}

/** A mark in the server's output: later waits only look at what follows it. */
async function serverMark() {
  return (await serverLines()).length;
}

/**
 * Waits until the server printed `expected` (exact lines) after `mark`, in
 * this order (other lines may come between them); returns the index after
 * the last one.
 */
async function expectServerLines(description, mark, expected, timeout = TIMEOUT) {
  let missing;
  try {
    return await until(description, async () => {
      const lines = (await serverLines()).slice(mark);
      let at = 0;
      for (const line of expected) {
        const found = lines.indexOf(line, at);
        if (found === -1) {
          missing = line;
          return false;
        }
        at = found + 1;
      }
      return mark + at;
    }, timeout);
  } catch (error) {
    const tail = (await serverLines()).slice(mark).slice(-12);
    throw new Error(`${error.message}; missing "${missing}"; the server printed since: ${JSON.stringify(tail)}`);
  }
}

/**
 * Compares the whole canvas with the server's pattern ([x%256, y%256, 128,
 * 255] RGBA); resolves to `{width, height, bad, first}` with the count of
 * differing pixels and the first of them.
 */
async function compareCanvas() {
  return page.evaluate(() => {
    const canvas = document.getElementById('remote-canvas');
    const { width, height } = canvas;
    const data = canvas.getContext('2d').getImageData(0, 0, width, height).data;
    let bad = 0;
    let first = null;
    for (let y = 0, index = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1, index += 4) {
        if (data[index] !== x % 256 || data[index + 1] !== y % 256 || data[index + 2] !== 128 || data[index + 3] !== 255) {
          bad += 1;
          first ??= { x, y, got: Array.from(data.subarray(index, index + 4)) };
        }
      }
    }
    return { width, height, bad, first };
  });
}

/** Waits until every pixel of the canvas (of the session's size) is the pattern. */
async function expectPattern(description, size) {
  return until(
    description,
    async () => {
      const result = await compareCanvas();
      if (size && (result.width !== size.width || result.height !== size.height)) {
        throw new Error(`canvas ${result.width}×${result.height}, expected ${size.width}×${size.height}`);
      }
      if (result.bad) throw new Error(`${result.bad} pixels differ, first ${JSON.stringify(result.first)}, expected ${pattern(result.first.x, result.first.y)}`);
      return result;
    },
    CONNECT_TIMEOUT,
  );
}

/** The pattern shows colours, not black: a few known points, as a readable check. */
async function expectColours() {
  const points = [[10, 10], [100, 50], [255, 200], [300, 100], [700, 500], [1000, 600]];
  const got = await lib.pixels(page, points);
  points.forEach(([x, y], index) => {
    assert(lib.same(got[index], pattern(x, y)), `(${x},${y}) is ${got[index]}, expected ${pattern(x, y)}`);
    assert(got[index].slice(0, 3).some((value) => value > 0), `(${x},${y}) is black`);
  });
}

const connected = () => lib.waitSessionConnected(page, CONNECT_TIMEOUT);

/** The appliance's session as the API sees it (the page's own token). */
async function sessionState(sessionId) {
  const token = await lib.accessToken(page);
  return (await apiCall(BASE, 'GET', `/sessions/${sessionId}`, { token })).state;
}

// ----------------------------------------------------------------- steps

browser = await lib.launchChromium(LABEL);
page = await lib.openPage(browser, VIEWPORT, 'rdp');

await step('first run: create the owner', async () => {
  await lib.bootstrapOwner(page, BASE, OWNER);
});

await step('create an organization', async () => {
  await lib.createOrganization(page, ORG.name);
});

await step('create a resource for the RDP test server, with its secret', async () => {
  const text = await lib.createRdpResource(page, { organization: ORG.name, port: RDP_PORT, ...RESOURCE });
  assert(text.includes(`127.0.0.1:${RDP_PORT}`) && text.includes('ignore'), `resource row: ${text}`);
  await screenshot(page, 'resources');
});

let sessionId;
let size;

await step('connect from My desktops: the server’s desktop is drawn on the canvas, pixel for pixel', async () => {
  await nav(page, 'My desktops');
  await heading(page, 'My desktops');
  await row(page, RESOURCE.name).getByRole('button', { name: 'Connect' }).click();
  await connected();
  sessionId = await page.locator('#viewer').getAttribute('data-session-id');
  // The session's size is the window's (viewer-screen.js windowSize); the server honours it.
  size = await page.evaluate(() => ({ width: window.innerWidth - 18, height: window.innerHeight - 190 }));
  size = { width: Math.floor(size.width / 2) * 2, height: Math.floor(size.height / 2) * 2 };
  const result = await expectPattern('the server’s pattern on the whole canvas', size);
  await expectColours();
  assert((await sessionState(sessionId)) === 'active', 'the session is active');
  console.log(`     canvas ${result.width}×${result.height}: every pixel is the server’s pattern`);
  // The frames were decoded in the viewer's Web Worker (frame-pipeline.js), not on the main thread.
  const decoder = await page.evaluate(() => document.getElementById('viewer').rapViewer.screen.pipeline.decoder);
  assert(decoder === 'worker', `frames decoded in the worker, not ${decoder}`);
  await page.locator('#latency[data-ms]').waitFor();
  await page.evaluate(() => document.getElementById('toasts').replaceChildren());
  await screenshot(page, 'viewer');
});

const CLICK = { x: 301, y: 203 };

await step('click, right-click, wheel: the server gets the pointer at the remote coordinates', async () => {
  const mark = await serverMark();
  const point = await clientPoint(page, CLICK.x, CLICK.y);
  await page.mouse.move(point.x, point.y);
  await page.mouse.down();
  await page.mouse.up();
  await expectServerLines('the left click on the server', mark, [
    `INPUT MOUSE Move { x: ${CLICK.x}, y: ${CLICK.y} }`,
    'INPUT MOUSE LeftPressed',
    'INPUT MOUSE LeftReleased',
  ]);
  assert(await page.evaluate(() => document.activeElement?.id === 'remote-canvas'), 'the canvas has the focus');

  const second = await serverMark();
  const other = await clientPoint(page, 640, 480);
  await page.mouse.move(other.x, other.y);
  await page.mouse.down({ button: 'right' });
  await page.mouse.up({ button: 'right' });
  await page.mouse.wheel(0, 100);
  const lines = await expectServerLines('the right click on the server', second, [
    'INPUT MOUSE Move { x: 640, y: 480 }',
    'INPUT MOUSE RightPressed',
    'INPUT MOUSE RightReleased',
  ]);
  await until('a wheel notch on the server', async () => (await serverLines()).slice(lines).some((line) => /^INPUT MOUSE VerticalScroll \{ value: -?\d+ \}$/.test(line)));
});

await step('type: the server gets the keys as scancodes', async () => {
  const mark = await serverMark();
  // r, d, p, Enter, ← (an extended key), and Shift+a.
  for (const key of ['KeyR', 'KeyD', 'KeyP', 'Enter', 'ArrowLeft', 'Shift+KeyA']) await page.keyboard.press(key);
  await expectServerLines('the keys on the server', mark, [
    'INPUT KEY Pressed { code: 19, extended: false }',
    'INPUT KEY Released { code: 19, extended: false }',
    'INPUT KEY Pressed { code: 32, extended: false }',
    'INPUT KEY Released { code: 32, extended: false }',
    'INPUT KEY Pressed { code: 25, extended: false }',
    'INPUT KEY Released { code: 25, extended: false }',
    'INPUT KEY Pressed { code: 28, extended: false }',
    'INPUT KEY Released { code: 28, extended: false }',
    'INPUT KEY Pressed { code: 75, extended: true }',
    'INPUT KEY Released { code: 75, extended: true }',
    'INPUT KEY Pressed { code: 42, extended: false }',
    'INPUT KEY Pressed { code: 30, extended: false }',
    'INPUT KEY Released { code: 30, extended: false }',
    'INPUT KEY Released { code: 42, extended: false }',
  ]);
});

await step('detach and resume: the RDP connection stays up and the desktop comes back', async () => {
  const mark = await serverMark();
  await page.getByRole('button', { name: 'Detach' }).click();
  await heading(page, 'My desktops');
  const session = page.locator('#my-sessions tbody tr', { hasText: RESOURCE.name });
  await session.filter({ hasText: 'detached' }).waitFor();
  assert((await sessionState(sessionId)) === 'detached', 'the session is detached');
  await screenshot(page, 'detached');
  await session.getByRole('button', { name: 'Resume' }).click();
  await connected();
  assert((await page.locator('#viewer').getAttribute('data-session-id')) === sessionId, 'the same session');
  await expectPattern('the desktop drawn again', size);
  await expectColours();
  const lines = (await serverLines()).slice(mark);
  assert(!lines.some((line) => line === 'DISCONNECTED' || line.startsWith('CONNECTION_ERROR')), `the server saw the connection end: ${JSON.stringify(lines)}`);
  // Input still reaches the same connection.
  const again = await serverMark();
  await page.locator('#remote-canvas').focus();
  await page.keyboard.press('KeyA');
  await expectServerLines('a key after resuming', again, ['INPUT KEY Pressed { code: 30, extended: false }', 'INPUT KEY Released { code: 30, extended: false }']);
  await screenshot(page, 'resumed');
});

await step('the appliance decoded the server’s updates (rap_screen_updates_total)', async () => {
  const metrics = await (await fetch(`${BASE}/metrics`)).text();
  const line = metrics.split('\n').find((text) => text.startsWith('rap_screen_updates_total '));
  assert(line && Number(line.split(' ')[1]) > 0, `rap_screen_updates_total: ${line}`);
});

await step('terminate: the viewer closes and the server sees the connection end', async () => {
  const mark = await serverMark();
  await page.getByRole('button', { name: 'Terminate' }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: 'Terminate' }).click();
  await heading(page, 'My desktops');
  await until('no open session', async () => (await page.locator('#my-sessions tbody tr', { hasText: RESOURCE.name }).count()) === 0);
  await expectServerLines('the server’s end of the connection', mark, ['DISCONNECTED'], CONNECT_TIMEOUT);
  const state = await sessionState(sessionId);
  assert(state === 'terminated', `session state: ${state}`);
});

await finish(browser);
