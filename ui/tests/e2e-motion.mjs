// Encoding on motion, in the browser (a step of e2e.mjs): a desktop whose
// host sends no H.264 (the scripted `video.scripted`: each key press plays
// a 2 s moving picture, 320×240 at 64,48) reaches a viewer that decodes
// H.264 as the appliance's own access units (encoding 4, whole pictures
// of the moving region, a key frame first), painted by WebCodecs; once the
// picture is still, the region comes again as lossless pixels, so the
// canvas shows the movie's last frame exactly. Without WebCodecs' H.264 in
// this Chromium the same step checks that pixels alone paint it.

import * as lib from './lib.mjs';
import { assert, until, sleep, nav, heading, row, waitConnected, expectPixels, pattern } from './lib.mjs';

const MOVIE = { x: 64, y: 48, width: 320, height: 240, frames: 60 };

/** The movie's pixel at (x, y) of the region in frame `frame` (the scripted runtime's `movie_frame`). */
function moviePixel(frame, x, y) {
  const shift = frame * 3;
  const [u, v] = [x + shift, y + Math.floor(shift / 2)];
  const wave = (value, period) => Math.floor(((value % period) * 255) / period);
  return [wave(u, 160), wave(v, 120), wave(u + v, 200), 255];
}

/** Counts what crosses the page's gateway sockets: H.264 units, key frames, whole pictures, pixel rectangles. */
function watchWire(page) {
  const wire = { units: 0, keyFrames: 0, pictures: new Set(), pixels: 0 };
  page.on('websocket', (socket) => {
    if (!socket.url().includes('/gateway/ws')) return;
    socket.on('framereceived', ({ payload }) => {
      if (typeof payload === 'string') return;
      const [encoding, flags] = [payload[5], payload[7]];
      if (encoding === 4) {
        wire.units += 1;
        if (flags & 0b10) wire.keyFrames += 1;
        const [x, y, width, height] = [12, 14, 16, 18].map((at) => payload.readUInt16LE(at));
        wire.pictures.add(`${width}×${height} at ${x},${y}${flags & 0b01 ? ', whole' : ''}`);
      } else if (encoding !== 5) {
        wire.pixels += 1;
      }
    });
  });
  return wire;
}

/** Resolves once the canvas has painted nothing new for `quietMs`. */
async function settled(page, quietMs = 1_500) {
  const frames = async () => Number((await page.locator('#remote-canvas').getAttribute('data-frames')) ?? 0);
  let last = await frames();
  let since = Date.now();
  await until('the picture to be still', async () => {
    const now = await frames();
    if (now !== last) [last, since] = [now, Date.now()];
    return Date.now() - since >= quietMs;
  }, 30_000);
}

export async function motionSteps({ step, screenshot, page, organization }) {
  await step('a moving picture on a host without H.264 comes as the appliance’s H.264, then losslessly', async () => {
    await lib.createRdpResource(page, { organization, name: 'Video wall', host: 'video.scripted', port: 3389, username: 'wall', password: 'unused' });
    const wire = watchWire(page);
    await nav(page, 'My desktops');
    await heading(page, 'My desktops');
    await row(page, 'Video wall').getByRole('button', { name: 'Connect' }).click();
    await waitConnected(page);
    const decodes = await page.evaluate(() => document.getElementById('viewer').rapViewer.screen.pipeline.decodesH264);
    await page.locator('#remote-canvas').focus();
    await page.keyboard.press('KeyA');
    if (decodes) {
      await until('the appliance’s H.264 units', async () => wire.units >= 10, 20_000);
      await screenshot(page, '30-viewer-motion');
      assert(wire.keyFrames >= 1, 'the stream starts at a key frame');
      // The status bar's figures refresh once a second.
      await until('the status bar to show the H.264 path', async () => (await page.locator('#picture-path').getAttribute('data-path')) === 'h264', 3_000);
    }
    await settled(page);
    // Lossless once still: the movie's last frame, exactly, and the pattern around it.
    const points = [[0, 0], [159, 119], [319, 239], [200, 30], [17, 211]].map(([x, y]) => [MOVIE.x + x, MOVIE.y + y, moviePixel(MOVIE.frames, x, y)]);
    const around = [[MOVIE.x - 1, MOVIE.y + 10], [MOVIE.x + MOVIE.width, MOVIE.y + 100], [500, 400]].map(([x, y]) => [x, y, pattern(x, y)]);
    await expectPixels(page, 'the last frame, lossless, in its place', [...points, ...around], 5_000);
    await screenshot(page, '31-viewer-motion-still');
    if (decodes) {
      assert([...wire.pictures].every((picture) => picture === '320×240 at 64,48, whole'), `pictures: ${[...wire.pictures]}`);
      assert(wire.units <= 70, `${wire.units} units for a 60-frame picture`);
    } else {
      assert(wire.units === 0, 'no H.264 for a browser that cannot decode it');
      console.log('e2e: this Chromium has no WebCodecs H.264: the moving picture came as pixels');
    }
    await page.getByRole('button', { name: 'Terminate' }).click();
    await page.getByRole('alertdialog').getByRole('button', { name: 'Terminate' }).click();
    await heading(page, 'My desktops');
    await sleep(100);
  });
}
