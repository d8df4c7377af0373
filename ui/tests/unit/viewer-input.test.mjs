// viewer-input.js: keyboard, mouse and wheel into the live plane's
// `input.key`, `input.unicode` and `input.mouse` payloads (PROTOCOL.md).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyMessage, isLeaveChord, wheelDelta, remotePoint } from '../../viewer-input.js';

test('a key with a physical code is input.key with that code, down and up', () => {
  assert.deepEqual(keyMessage({ code: 'KeyA', key: 'a' }, true), { type: 'input.key', payload: { code: 'KeyA', down: true } });
  assert.deepEqual(keyMessage({ code: 'ShiftLeft', key: 'Shift' }, false), { type: 'input.key', payload: { code: 'ShiftLeft', down: false } });
});

test('a character without a code (virtual keyboards) is input.unicode, once, on the way down', () => {
  assert.deepEqual(keyMessage({ code: '', key: 'é' }, true), { type: 'input.unicode', payload: { text: 'é' } });
  assert.equal(keyMessage({ code: '', key: 'é' }, false), null);
  assert.equal(keyMessage({ code: '', key: 'Unidentified' }, true), null, 'a key name is not a character');
});

test('Ctrl+Alt+Home going down leaves the canvas; nothing else does', () => {
  assert.equal(isLeaveChord({ ctrlKey: true, altKey: true, code: 'Home' }, true), true);
  assert.equal(isLeaveChord({ ctrlKey: true, altKey: true, code: 'Home' }, false), false);
  assert.equal(isLeaveChord({ ctrlKey: true, altKey: false, code: 'Home' }, true), false);
  assert.equal(isLeaveChord({ ctrlKey: true, altKey: true, code: 'End' }, true), false);
});

test('wheel: down is positive, about 100 px a notch is 120 units, lines and pages scale', () => {
  assert.equal(wheelDelta(100, 0), 120);
  assert.equal(wheelDelta(-100, 0), -120);
  assert.equal(wheelDelta(3, 1), 144, '3 lines of 40 px');
  assert.equal(wheelDelta(1, 2), 960, 'one page of 800 px');
  assert.equal(wheelDelta(0.2, 0), 0, 'too little to send');
});

test('wheel deltas are clamped to an i16', () => {
  assert.equal(wheelDelta(1e6, 0), 32767);
  assert.equal(wheelDelta(-1e6, 0), -32768);
});

test('a point on the scaled canvas is the remote pixel under it', () => {
  const rect = { left: 10, top: 20, width: 640, height: 400 }; // a 1280×800 screen drawn at half size
  assert.deepEqual(remotePoint(10, 20, rect, 1280, 800), { x: 0, y: 0 });
  assert.deepEqual(remotePoint(330, 220, rect, 1280, 800), { x: 640, y: 400 });
  assert.deepEqual(remotePoint(10.4, 20.4, rect, 1280, 800), { x: 0, y: 0 });
});

test('points outside the canvas are clamped to its edge pixels', () => {
  const rect = { left: 0, top: 0, width: 100, height: 100 };
  assert.deepEqual(remotePoint(-5, -5, rect, 100, 100), { x: 0, y: 0 });
  assert.deepEqual(remotePoint(100, 250, rect, 100, 100), { x: 99, y: 99 });
});
