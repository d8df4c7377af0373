// End-to-end test of the viewer's H.264 path against a real H.264 host, in
// headless Chromium: FreeRDP's shadow server (testing/shadow-setup.sh; the
// RDP graphics pipeline, AVC420 from libx264) behind an appliance with the
// RDP worker runtime. First run, an organization, a resource for the server
// with its secret, a session from "My desktops"; then: the attach asked for
// `"codecs": ["h264"]` and `session.attached` granted it, the status bar
// says H.264, the worker decoded the host's units (WebCodecs) and painted
// them, typing into the xterm through the viewer brings more units, the
// H.264 picture is the appliance's own pixels (a resync repaints the screen
// as pixels to compare), grayscale goes back to pixels and full colour to
// H.264, and terminate.
//
// When this Chromium cannot decode H.264 (`VideoDecoder.isConfigSupported`
// in the page says no), the test checks the fallback instead: no codecs
// asked for, none granted, pixels painted, and it says so.
//
//   ui/tests/run-shadow.sh path/to/rap-appliance 127.0.0.1:13390
//
// or, against a fresh appliance (RAP_WORKER_RUNTIME=rdp, development mode)
// and a shadow server already running:
//
//   RAP_URL=http://127.0.0.1:18080 RDP_HOST=127.0.0.1 RDP_PORT=13390 node e2e-h264.mjs
//
// Screenshots go to ./artifacts/viewer-h264.png and ./artifacts/h264-*.png.
// The last line is `e2e: N passed, M failed` (the same format as e2e.mjs).

import * as lib from './lib.mjs';
import { assert, until, sleep, heading, nav, row, clientPoint, apiCall } from './lib.mjs';

const LABEL = 'e2e';
const BASE = lib.baseUrl(LABEL);
const RDP_HOST = process.env.RDP_HOST ?? '127.0.0.1';
const RDP_PORT = Number(process.env.RDP_PORT);
if (!RDP_PORT) {
  console.error('e2e-h264: set RDP_PORT (and RDP_HOST) to the shadow server’s address; run-shadow.sh does');
  console.log(`${LABEL}: 0 passed, 1 failed`);
  process.exit(2);
}
/** A real RDP connection takes a while (TLS, capability exchange, the graphics pipeline; debug builds). */
const CONNECT_TIMEOUT = 45_000;

const OWNER = { email: 'owner@example.com', name: 'Olivia Owner', password: 'correct horse battery staple' };
const ORG = { name: 'H.264 Lab' };
// The shadow server shares its display without a login (`-auth`): any credentials do.
const RESOURCE = { name: 'Shadow desktop', host: RDP_HOST, username: 'viewer', password: 'anything' };
const VIEWPORT = { width: 1280, height: 860 };
/** A point inside the xterm (at +10+10 on the shared display); without a window manager the keys go to the window under the pointer. */
const XTERM = { x: 100, y: 100 };

let browser;
let page;
const { step, screenshot, finish } = lib.createRun({ label: LABEL, failurePrefix: 'h264-failure', pages: () => [page] });

// ------------------------------------------------------------ the socket

/**
 * What crossed the viewer's gateway socket, read at the boundary (the
 * browser's own WebSocket frames): the attach sent, `session.attached`,
 * and the binary frames by encoding.
 */
const wire = { attach: null, attaches: 0, attached: null, units: 0, keyFrames: 0, regions: 0, emptyRegions: 0, pixels: 0, pictures: new Map() };

function watchSocket(target) {
  target.on('websocket', (socket) => {
    if (!socket.url().includes('/gateway/ws')) return;
    socket.on('framesent', ({ payload }) => {
      if (typeof payload !== 'string') return;
      const message = JSON.parse(payload);
      if (message.type === 'attach') {
        wire.attach = message.payload;
        wire.attaches += 1;
        wire.attached = null;
      }
    });
    socket.on('framereceived', ({ payload }) => {
      if (typeof payload === 'string') {
        const message = JSON.parse(payload);
        if (message.type === 'session.attached') wire.attached = message.payload;
        return;
      }
      // The binary_v1 header: encoding at 5, flags at 7 (bit 1: key frame).
      const encoding = payload[5];
      const [x, y, width, height] = [12, 14, 16, 18].map((at) => payload.readUInt16LE(at));
      if (encoding === 4) {
        wire.units += 1;
        if (payload[7] & 0b10) wire.keyFrames += 1;
        const picture = `${width}×${height} at ${x},${y}${payload[7] & 0b01 ? ' (whole)' : ' (regions)'}`;
        wire.pictures.set(picture, (wire.pictures.get(picture) ?? 0) + 1);
      } else if (encoding === 5) {
        wire.regions += 1;
        if (!width || !height) wire.emptyRegions += 1;
      } else {
        wire.pixels += 1;
      }
    });
  });
}

// --------------------------------------------------------------- helpers

/** The viewer's counts: the pipeline's H.264 ones, rectangles painted, the picture path shown. */
function viewerCounts() {
  return page.evaluate(() => {
    const viewer = document.getElementById('viewer').rapViewer;
    const { pipeline } = viewer.screen;
    return {
      ...pipeline.video,
      frames: viewer.screen.frames,
      decoder: pipeline.decoder,
      decodesH264: pipeline.decodesH264,
      path: document.getElementById('picture-path').dataset.path ?? null,
      pathText: document.getElementById('picture-path').textContent,
    };
  });
}

/** Waits until nothing new is decoded or painted for `quietMs`; resolves to the counts then. */
async function settle(description, quietMs = 1_500, timeout = CONNECT_TIMEOUT) {
  let last = JSON.stringify(await viewerCounts());
  let since = Date.now();
  return until(
    description,
    async () => {
      const counts = await viewerCounts();
      const now = JSON.stringify(counts);
      if (now !== last) {
        last = now;
        since = Date.now();
        return false;
      }
      return Date.now() - since >= quietMs ? counts : false;
    },
    timeout,
  );
}

/** The whole canvas as RGBA bytes (in the page: compared there, only numbers come back). */
async function canvasStats() {
  return page.evaluate(() => {
    const canvas = document.getElementById('remote-canvas');
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    const colours = new Set();
    let lit = 0;
    for (let index = 0; index < data.length; index += 4 * 7) {
      colours.add((data[index] << 16) | (data[index + 1] << 8) | data[index + 2]);
      if (data[index] + data[index + 1] + data[index + 2] > 60) lit += 1;
    }
    return { width: canvas.width, height: canvas.height, colours: colours.size, lit, sampled: Math.ceil(data.length / 28) };
  });
}

/** Keeps a copy of the canvas in the page (for `compareWithKept`). */
function keepCanvas() {
  return page.evaluate(() => {
    const canvas = document.getElementById('remote-canvas');
    window.__h264Kept = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data.slice();
  });
}

/**
 * The canvas now against the kept copy: the mean difference per channel,
 * the largest, and the share of pixels more than 24 levels off in some channel.
 */
function compareWithKept() {
  return page.evaluate(() => {
    const canvas = document.getElementById('remote-canvas');
    const now = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const kept = window.__h264Kept;
    if (kept.length !== now.length) return { sizeChanged: true };
    let sum = 0;
    let max = 0;
    let off = 0;
    for (let index = 0; index < now.length; index += 4) {
      let worst = 0;
      for (let channel = 0; channel < 3; channel += 1) {
        const difference = Math.abs(now[index + channel] - kept[index + channel]);
        sum += difference;
        worst = Math.max(worst, difference);
      }
      max = Math.max(max, worst);
      if (worst > 24) off += 1;
    }
    const pixels = now.length / 4;
    return { mean: sum / (pixels * 3), max, offShare: off / pixels };
  });
}

/** Types `text` (and Enter) into the xterm through the viewer: the pointer over it first (focus follows the pointer). */
async function typeIntoXterm(text) {
  const point = await clientPoint(page, XTERM.x, XTERM.y);
  await page.mouse.move(point.x, point.y);
  await page.locator('#remote-canvas').focus();
  await page.keyboard.type(text, { delay: 30 });
  await page.keyboard.press('Enter');
}

const connected = () => lib.waitSessionConnected(page, CONNECT_TIMEOUT);

/** Whether this Chromium decodes H.264 with WebCodecs, asked in the page (a secure context) as the worker asks. */
function pageSupportsH264() {
  return page.evaluate(async () => {
    if (typeof VideoDecoder !== 'function') return { supported: false, why: 'no VideoDecoder (WebCodecs) in this page' };
    const { supported } = await VideoDecoder.isConfigSupported({ codec: 'avc1.640028', optimizeForLatency: true });
    return { supported, why: supported ? '' : 'VideoDecoder.isConfigSupported says no to avc1.640028' };
  });
}

/**
 * A stream of known pictures, encoded in the page (WebCodecs
 * `VideoEncoder`, Annex B) and framed as the gateway frames the host's
 * units (encodings 4 and 5), through the viewer's own pipeline and worker:
 * what each message paints. The shadow server paints whole pictures only,
 * so regions cut from a picture, decode-only units, the reset and a failed
 * key frame are checked here. Resolves to `{skipped: why}` when this
 * Chromium cannot encode H.264.
 */
function syntheticStream() {
  return page.evaluate(async () => {
    const W = 208;
    const H = 120; // not a whole number of macroblocks: the decoder crops
    const AT = { x: 16, y: 8 }; // where the picture goes on the screen
    const config = { codec: 'avc1.42001f', width: W, height: H, avc: { format: 'annexb' }, latencyMode: 'realtime', bitrate: 2_000_000 };
    if (typeof VideoEncoder !== 'function' || !(await VideoEncoder.isConfigSupported(config)).supported) return { skipped: 'no H.264 VideoEncoder here' };

    // The pictures: flat blocks, so that the lossy stream keeps their colours.
    const canvas = new OffscreenCanvas(W, H);
    const context = canvas.getContext('2d');
    const block = (colour, x, y, width, height) => {
      context.fillStyle = colour;
      context.fillRect(x, y, width, height);
    };
    const pictures = {
      A: () => { block('#ff0000', 0, 0, W / 2, H); block('#0000ff', W / 2, 0, W / 2, H); },
      B: () => block('#00ff00', 32, 32, 64, 48),
      C: () => block('#ffffff', 128, 64, 48, 32),
      D: () => block('#ffff00', 16, 96, 64, 16),
      E: () => block('#00ffff', 0, 0, 32, 32),
      F: () => { block('#808080', 0, 0, W, H); },
      G: () => block('#ff00ff', 96, 16, 32, 32),
      H: () => { block('#000000', 0, 0, W, H); block('#ff8000', 64, 32, 64, 48); },
    };
    const keys = new Set(['A', 'F', 'H']);
    const chunks = [];
    const encoder = new VideoEncoder({
      output: (chunk) => {
        const data = new Uint8Array(chunk.byteLength);
        chunk.copyTo(data);
        chunks.push({ key: chunk.type === 'key', data });
      },
      error: (error) => { throw error; },
    });
    encoder.configure(config);
    let timestamp = 0;
    for (const [name, draw] of Object.entries(pictures)) {
      draw();
      const frame = new VideoFrame(canvas, { timestamp });
      timestamp += 33_333;
      encoder.encode(frame, { keyFrame: keys.has(name) });
      frame.close();
    }
    await encoder.flush();
    encoder.close();
    const units = Object.fromEntries(Object.keys(pictures).map((name, index) => [name, chunks[index]]));

    /** A binary_v1 message as the gateway writes it. */
    let seq = 0;
    const message = (encoding, { last, key = false, x, y, width, height, payload = new Uint8Array(0) }) => {
      const out = new Uint8Array(24 + payload.length);
      const view = new DataView(out.buffer);
      out.set([0x52, 0x41, 0x50, 0x46, 1, encoding, 0, (last ? 1 : 0) | (key ? 2 : 0)]);
      view.setUint32(8, seq, true);
      [x, y, width, height].forEach((value, index) => view.setUint16(12 + index * 2, value, true));
      view.setUint32(20, payload.length, true);
      out.set(payload, 24);
      return out.buffer;
    };
    const picture = { x: AT.x, y: AT.y, width: W, height: H };
    const unit = (name, last) => {
      seq += 1;
      return message(4, { ...picture, last, key: units[name].key, payload: units[name].data });
    };
    const region = (x, y, width, height, last = true) => message(5, { last, x: AT.x + x, y: AT.y + y, width, height });

    const { FramePipeline } = await import('/frame-pipeline.js');
    const painted = [];
    const log = [];
    const pipeline = new FramePipeline({
      paint: (frame) => {
        if (!frame.width || !frame.height) {
          log.push(`nothing ${frame.seq}`);
          return;
        }
        // The colour at each block's centre (screen coordinates) the frame covers.
        const probes = { red: [40, 60], blue: [160, 20], green: [64, 56], white: [152, 80], yellow: [48, 104], cyan: [16, 16], gray: [190, 110], magenta: [112, 32], orange: [96, 56] };
        const colours = {};
        for (const [name, [px, py]] of Object.entries(probes)) {
          const sx = AT.x + px - frame.x;
          const sy = AT.y + py - frame.y;
          if (sx < 0 || sy < 0 || sx >= frame.width || sy >= frame.height) continue;
          const at = (sy * frame.width + sx) * 4;
          colours[name] = Array.from(frame.rgba.subarray(at, at + 3));
        }
        painted.push({ seq: frame.seq, encoding: frame.encoding, rect: [frame.x, frame.y, frame.width, frame.height], colours });
        log.push(`paint ${frame.seq} ${frame.encoding}`);
      },
      fail: (error) => log.push(`fail ${error.message}`),
      resync: () => log.push('resync'),
    });
    await pipeline.whenReady();
    const drained = async () => {
      for (let wait = 0; pipeline.queue.length && wait < 500; wait += 1) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    const decodes = pipeline.decodesH264;

    // A: the key frame, whole. B: two regions of its picture. C: decode only.
    // D: a region C drew (decoded, never painted) and one D drew.
    pipeline.push(unit('A', true));
    pipeline.push(unit('B', false));
    pipeline.push(region(32, 32, 32, 48, false));
    pipeline.push(region(64, 32, 32, 48, true));
    pipeline.push(unit('C', false));
    pipeline.push(region(0, 0, 0, 0, true));
    pipeline.push(unit('D', false));
    pipeline.push(region(128, 64, 48, 32, false));
    pipeline.push(region(16, 96, 64, 16, true));
    await drained();
    // Frames dropped (the pipeline's overflow): units wait for a key frame.
    pipeline.worker.postMessage({ reset: true });
    pipeline.push(unit('E', true)); // skipped: a delta
    pipeline.push(unit('F', true)); // the key frame: whole again
    await drained();
    // A key frame whose SPS names no profile a decoder has: reported once, a resync; the delta after it is skipped.
    seq += 1;
    const bad = new Uint8Array([0, 0, 0, 1, 0x67, 0xff, 0x00, 0x20, 0xac, 0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0, 0, 1, 0x65, 0x88, 0x84, 0x00]);
    pipeline.push(message(4, { ...picture, last: true, key: true, payload: bad }));
    pipeline.push(unit('G', true));
    pipeline.push(unit('H', true));
    await drained();
    const video = { ...pipeline.video };
    pipeline.close();
    return { decodes, painted, log, video, seqs: Object.fromEntries(Object.keys(pictures).map((name, index) => [name, index + 1])) };
  });
}

/** Whether `got` ([r, g, b]) is `expected` within `tolerance` per channel (the stream is lossy). */
const near = (got, expected, tolerance = 24) => Boolean(got) && got.every((value, index) => Math.abs(value - expected[index]) <= tolerance);

// ----------------------------------------------------------------- steps

browser = await lib.launchChromium(LABEL);
page = await lib.openPage(browser, VIEWPORT, 'h264');
watchSocket(page);

let support = { supported: false, why: 'not asked' };

await step('first run: create the owner; this Chromium says whether it decodes H.264', async () => {
  await lib.bootstrapOwner(page, BASE, OWNER);
  support = await pageSupportsH264();
  console.log(`     Chromium ${browser.version()}: ${support.supported ? 'decodes H.264 (WebCodecs, avc1.640028)' : `cannot decode H.264: ${support.why}; checking the pixel fallback`}`);
});

await step('a known H.264 stream through the viewer’s pipeline: whole pictures, regions, decode-only units, reset, a failed key frame', async () => {
  if (!support.supported) {
    console.log('     skipped: this Chromium cannot decode H.264');
    return;
  }
  const result = await syntheticStream();
  if (result.skipped) {
    console.log(`     skipped: ${result.skipped}`);
    return;
  }
  assert(result.decodes, 'the pipeline decodes H.264');
  const { painted, log, video } = result;
  console.log(`     ${log.join(' | ')}`);
  const RED = [255, 0, 0];
  const BLUE = [0, 0, 255];
  const GREEN = [0, 255, 0];
  const WHITE = [255, 255, 255];
  const YELLOW = [255, 255, 0];
  const GRAY = [128, 128, 128];
  const ORANGE = [255, 128, 0];
  const [a, b1, b2, d1, d2, f, h] = painted;
  assert(painted.length === 7, `7 rectangles painted: ${JSON.stringify(painted.map((frame) => frame.rect))}`);
  // A: the whole picture where the header puts it, cropped to its size.
  assert(JSON.stringify(a.rect) === '[16,8,208,120]' && a.encoding === 4, `A: ${JSON.stringify(a)}`);
  assert(near(a.colours.red, RED) && near(a.colours.blue, BLUE), `A's colours: ${JSON.stringify(a.colours)}`);
  // B: its two regions only, cut from its picture.
  assert(JSON.stringify(b1.rect) === '[48,40,32,48]' && JSON.stringify(b2.rect) === '[80,40,32,48]' && b1.encoding === 5, `B: ${JSON.stringify([b1, b2])}`);
  assert(near(b2.colours.green, GREEN), `B's green: ${JSON.stringify(b2.colours)}`);
  // C painted nothing, but was decoded: D's first region shows C's white block.
  assert(log.includes('nothing 3'), `C paints nothing: ${log}`);
  assert(JSON.stringify(d1.rect) === '[144,72,48,32]' && near(d1.colours.white, WHITE), `D's region from C: ${JSON.stringify(d1)}`);
  assert(JSON.stringify(d2.rect) === '[32,104,64,16]' && near(d2.colours.yellow, YELLOW), `D's own region: ${JSON.stringify(d2)}`);
  // After the reset: E (a delta) skipped, F (a key frame) whole.
  assert(log.includes('nothing 5') && f.seq === 6 && near(f.colours.gray, GRAY), `after the reset: ${JSON.stringify(f)}; ${log}`);
  // The bad key frame: reported once, one resync; G skipped; H decodes.
  const failures = log.filter((line) => line.startsWith('fail'));
  assert(failures.length === 1 && log.filter((line) => line === 'resync').length === 1, `one failure, one resync: ${log}`);
  assert(log.includes('nothing 8') && h.seq === 9 && near(h.colours.orange, ORANGE), `after the failure: ${JSON.stringify(h)}; ${log}`);
  assert(video.decoded === 6 && video.skipped === 2 && video.errors === 1 && video.painted === 7 && video.resyncs === 1, `counts: ${JSON.stringify(video)}`);
  console.log(`     counts ${JSON.stringify(video)}; failure: ${failures[0]}`);
});

await step('create an organization', async () => {
  await lib.createOrganization(page, ORG.name);
});

await step('create a resource for the shadow server (certificates ignored), with its secret', async () => {
  const text = await lib.createRdpResource(page, { organization: ORG.name, port: RDP_PORT, ...RESOURCE });
  assert(text.includes(`${RDP_HOST}:${RDP_PORT}`) && text.includes('ignore'), `resource row: ${text}`);
});

let sessionId;

await step('connect: the attach asks for H.264, session.attached grants it, the status says so', async () => {
  await nav(page, 'My desktops');
  await heading(page, 'My desktops');
  await row(page, RESOURCE.name).getByRole('button', { name: 'Connect' }).click();
  await connected();
  sessionId = await page.locator('#viewer').getAttribute('data-session-id');
  assert(wire.attach, 'an attach was sent');
  assert(wire.attached, 'session.attached came');
  console.log(`     attach codecs ${JSON.stringify(wire.attach.codecs ?? null)}; session.attached codecs ${JSON.stringify(wire.attached.codecs ?? null)}; ${wire.attached.width}×${wire.attached.height}`);
  const counts = await until('the status bar’s picture path', async () => {
    const now = await viewerCounts();
    return now.path ? now : false;
  });
  assert(counts.decoder === 'worker', `frames decoded in the worker, not ${counts.decoder}`);
  if (support.supported) {
    assert(counts.decodesH264, 'the worker says it decodes H.264');
    assert(JSON.stringify(wire.attach.codecs) === '["h264"]', `attach codecs: ${JSON.stringify(wire.attach.codecs)}`);
    assert(JSON.stringify(wire.attached.codecs) === '["h264"]', `session.attached codecs: ${JSON.stringify(wire.attached.codecs)}`);
    assert(counts.path === 'h264' && counts.pathText === 'H.264', `status: ${counts.pathText} (${counts.path})`);
  } else {
    assert(!counts.decodesH264, 'the worker says it cannot decode H.264');
    assert(wire.attach.codecs === undefined, `attach codecs: ${JSON.stringify(wire.attach.codecs)}`);
    assert(wire.attached.codecs === undefined, `session.attached codecs: ${JSON.stringify(wire.attached.codecs)}`);
    assert(counts.path === 'pixels' && counts.pathText === 'Pixels', `status: ${counts.pathText} (${counts.path})`);
  }
});

await step('the host’s picture is on the canvas: units decoded in the worker (or pixels, without H.264)', async () => {
  if (support.supported) {
    await until('an H.264 unit decoded', async () => (await viewerCounts()).decoded > 0, CONNECT_TIMEOUT);
  }
  const counts = await settle('the picture to settle');
  const stats = await canvasStats();
  console.log(`     on the wire: ${wire.units} units (${wire.keyFrames} key frames), ${wire.regions} regions, ${wire.pixels} pixel rectangles`);
  console.log(`     viewer: ${counts.decoded} units decoded, ${counts.skipped} skipped, ${counts.errors} errors, ${counts.painted} H.264 rectangles painted, ${counts.frames} rectangles painted in all`);
  console.log(`     canvas ${stats.width}×${stats.height}: ${stats.colours} colours, ${stats.lit} of ${stats.sampled} sampled pixels lit`);
  assert(stats.colours > 2 && stats.lit > stats.sampled / 20, `the canvas is blank: ${JSON.stringify(stats)}`);
  if (support.supported) {
    assert(wire.keyFrames > 0, 'the first unit on the wire is a key frame');
    assert(counts.decoded > 0, 'units decoded');
    assert(counts.errors === 0, `${counts.errors} decode errors`);
  } else {
    assert(wire.units === 0 && wire.regions === 0, `no H.264 on the wire: ${JSON.stringify(wire)}`);
    assert(counts.frames > 0, 'pixels painted');
  }
});

let afterTyping;

await step('type into the xterm through the viewer: the host sends more units, decoded and painted', async () => {
  const before = await viewerCounts();
  const wireBefore = { ...wire };
  // (The xterm is a shell: it is only ever asked to clear and echo.)
  await typeIntoXterm('clear');
  await settle('the cleared xterm');
  await typeIntoXterm('echo rap-h264-check');
  afterTyping = await until(
    support.supported ? 'more units decoded and painted' : 'more pixels painted',
    async () => {
      const now = await viewerCounts();
      return (support.supported ? now.decoded > before.decoded && now.painted > before.painted : now.frames > before.frames) ? now : false;
    },
    CONNECT_TIMEOUT,
  );
  afterTyping = await settle('the picture to settle after typing');
  console.log(`     typing: +${afterTyping.decoded - before.decoded} units decoded, +${afterTyping.painted - before.painted} H.264 rectangles painted, +${afterTyping.frames - before.frames} rectangles in all; on the wire +${wire.units - wireBefore.units} units, +${wire.regions - wireBefore.regions} regions, +${wire.pixels - wireBefore.pixels} pixel rectangles`);
  assert(afterTyping.errors === 0, `${afterTyping.errors} decode errors`);
  await page.evaluate(() => document.getElementById('toasts')?.replaceChildren());
  // The pointer off the canvas, so the screenshot shows the picture alone.
  await page.mouse.move(5, 5);
  await sleep(300);
  await screenshot(page, 'viewer-h264');
});

await step('the H.264 picture is the appliance’s own: a resync repaints the screen as pixels, nearly the same', async () => {
  await keepCanvas();
  const before = await viewerCounts();
  // Re-sending the colour mode asks for the whole screen (the pipeline's resync).
  await page.evaluate(() => document.getElementById('viewer').rapViewer.send('color_mode', { color_mode: 'full_color' }));
  await until('the whole screen painted again', async () => (await viewerCounts()).frames > before.frames, CONNECT_TIMEOUT);
  await settle('the picture to settle after the resync');
  const difference = await compareWithKept();
  console.log(`     H.264-painted canvas vs the appliance's pixels: mean ${difference.mean?.toFixed(3)} levels per channel, max ${difference.max}, ${((difference.offShare ?? 0) * 100).toFixed(3)} % of pixels over 24 levels off`);
  assert(!difference.sizeChanged, 'the canvas kept its size');
  assert(difference.mean < 2 && difference.offShare < 0.01, `the pictures differ: ${JSON.stringify(difference)}`);
  if (support.supported) {
    // The video restarted at a key frame: typing is decoded again, without errors.
    const again = await viewerCounts();
    await typeIntoXterm('echo again');
    const now = await until('units decoded after the resync', async () => {
      const counts = await viewerCounts();
      return counts.decoded > again.decoded && counts.painted > again.painted ? counts : false;
    }, CONNECT_TIMEOUT);
    assert(now.errors === 0, `${now.errors} decode errors`);
  }
});

await step('grayscale is pixels only; full colour is H.264 again', async () => {
  await page.getByRole('button', { name: 'Grayscale' }).click();
  await until('the status saying Pixels', async () => (await viewerCounts()).path === 'pixels');
  await settle('the grayscale picture');
  const unitsBefore = wire.units;
  const before = await viewerCounts();
  await typeIntoXterm('echo gray');
  await until('grayscale pixels painted', async () => (await viewerCounts()).frames > before.frames, CONNECT_TIMEOUT);
  await settle('the grayscale picture after typing');
  assert(wire.units === unitsBefore, `${wire.units - unitsBefore} H.264 units sent in grayscale`);
  await screenshot(page, 'h264-grayscale');
  await page.getByRole('button', { name: 'Grayscale' }).click();
  const expected = support.supported ? 'h264' : 'pixels';
  await until(`the status saying ${expected}`, async () => (await viewerCounts()).path === expected);
  if (support.supported) {
    const colour = await viewerCounts();
    await typeIntoXterm('echo colour');
    await until('units decoded in full colour again', async () => (await viewerCounts()).decoded > colour.decoded, CONNECT_TIMEOUT);
  }
  const counts = await settle('the full-colour picture');
  assert(counts.errors === 0, `${counts.errors} decode errors`);
  console.log(`     in all: ${counts.decoded} units decoded, ${counts.skipped} skipped, ${counts.errors} errors, ${counts.painted} H.264 rectangles painted; on the wire ${wire.units} units (${wire.keyFrames} key frames), ${wire.regions} regions (${wire.emptyRegions} empty: decode only)`);
  console.log(`     unit pictures: ${[...wire.pictures].map(([picture, count]) => `${picture} ×${count}`).join(', ')}`);
});

await step('the frame worker gone: the viewer attaches again without H.264 and the picture comes as pixels', async () => {
  const attaches = wire.attaches;
  await page.evaluate(() => document.getElementById('viewer').rapViewer.screen.pipeline.stopWorker(new Error('stopped by the test')));
  await until('a new attach', async () => wire.attaches > attaches, CONNECT_TIMEOUT);
  await connected();
  assert(wire.attach.codecs === undefined, `attach codecs: ${JSON.stringify(wire.attach.codecs)}`);
  await until('session.attached without codecs', async () => wire.attached && wire.attached.codecs === undefined, CONNECT_TIMEOUT);
  const before = await settle('the picture after the new attach');
  assert(before.decoder === 'main' && before.path === 'pixels' && before.pathText === 'Pixels', `decoder ${before.decoder}, status ${before.pathText}`);
  const unitsBefore = wire.units;
  await typeIntoXterm('echo pixels');
  await until('pixels painted', async () => (await viewerCounts()).frames > before.frames, CONNECT_TIMEOUT);
  await settle('the picture after typing');
  assert(wire.units === unitsBefore, `${wire.units - unitsBefore} H.264 units after attaching without H.264`);
  const stats = await canvasStats();
  assert(stats.colours > 2 && stats.lit > stats.sampled / 20, `the canvas is blank: ${JSON.stringify(stats)}`);
  await screenshot(page, 'h264-fallback');
});

await step('terminate: the viewer closes and the session ends', async () => {
  await page.getByRole('button', { name: 'Terminate' }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: 'Terminate' }).click();
  await heading(page, 'My desktops');
  const token = await lib.accessToken(page);
  await until('the session terminated', async () => (await apiCall(BASE, 'GET', `/sessions/${sessionId}`, { token })).state === 'terminated', CONNECT_TIMEOUT);
});

await finish(browser);
