// viewer-screen.js: the canvas geometry (fit, remote resize, the first
// session size), the remembered colour mode, and when the picture comes
// as H.264.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evenWithin, resizeTarget, fitSize, storedColorMode, COLOR_MODE_KEY, attachCodecs, picturePath } from '../../viewer-screen.js';

test('sizes are even and within bounds', () => {
  assert.equal(evenWithin(1001, 64, 7680), 1000);
  assert.equal(evenWithin(10, 64, 7680), 64);
  assert.equal(evenWithin(9999, 64, 7680), 7680);
});

test('a remote resize asks for the stage, within 64–7680 × 64–4320', () => {
  assert.deepEqual(resizeTarget(1263, 671), { width: 1262, height: 670 });
  assert.deepEqual(resizeTarget(9000, 9000), { width: 7680, height: 4320 });
  assert.deepEqual(resizeTarget(0, 0, () => ({ width: 801, height: 601 })), { width: 800, height: 600 }, 'no stage yet: the window');
});

test('the canvas fits the stage with its aspect ratio', () => {
  assert.deepEqual(fitSize(1000, 1000, 1280, 800), { width: 1000, height: 625 });
  assert.deepEqual(fitSize(640, 800, 1280, 800), { width: 640, height: 400 });
  assert.deepEqual(fitSize(2560, 1600, 1280, 800), { width: 2560, height: 1600 }, 'scaled up too');
  assert.equal(fitSize(0, 500, 1280, 800), null, 'a stage without a size is left alone');
});

test('the colour mode is grayscale only when remembered so', () => {
  const storage = (value) => ({ getItem: (key) => (key === COLOR_MODE_KEY ? value : null) });
  assert.equal(COLOR_MODE_KEY, 'rap.viewer.color_mode');
  assert.equal(storedColorMode(storage('grayscale')), 'grayscale');
  assert.equal(storedColorMode(storage('full_color')), 'full_color');
  assert.equal(storedColorMode(storage(null)), 'full_color');
  assert.equal(storedColorMode(storage('sepia')), 'full_color');
});

test('the attach asks for H.264 only when the worker decodes it and the picture is in full colour', () => {
  assert.deepEqual(attachCodecs(true, 'full_color'), ['h264']);
  assert.deepEqual(attachCodecs(true, 'grayscale'), [], 'the gateway sends H.264 in full colour only');
  assert.deepEqual(attachCodecs(false, 'full_color'), [], 'no decoder: pixels');
});

test('the status says H.264 when session.attached granted it, in full colour', () => {
  assert.equal(picturePath(['h264'], 'full_color'), 'h264');
  assert.equal(picturePath(['h264'], 'grayscale'), 'pixels', 'grayscale is always pixels');
  assert.equal(picturePath([], 'full_color'), 'pixels');
});
