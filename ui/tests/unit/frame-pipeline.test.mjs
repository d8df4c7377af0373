// frame-pipeline.js: frames are painted in the order they came, however
// long each takes to decode; a waiting frame that the next one covers is
// never decoded; too many waiting frames are dropped for a resync. (Node
// has no Web Worker global, so these decode on the main thread, the
// pipeline's fallback.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { FramePipeline } from '../../frame-pipeline.js';
import { HEADER_LEN, Encoding, FLAG_LAST } from '../../frames.js';

/** A `binary_v1` message of a width × height gray rectangle at (x, y). */
function grayFrame({ seq, x = 0, y = 0, width = 1, height = 1, zlib = false }) {
  const pixels = new Uint8Array(width * height).fill(seq % 256);
  const payload = zlib ? deflateSync(pixels) : pixels;
  const out = new Uint8Array(HEADER_LEN + payload.length);
  const view = new DataView(out.buffer);
  out.set([0x52, 0x41, 0x50, 0x46, 1, zlib ? Encoding.ZLIB_GRAY8 : Encoding.RAW_GRAY8, 1, FLAG_LAST]);
  view.setUint32(8, seq, true);
  view.setUint16(12, x, true);
  view.setUint16(14, y, true);
  view.setUint16(16, width, true);
  view.setUint16(18, height, true);
  view.setUint32(20, payload.length, true);
  out.set(payload, HEADER_LEN);
  return out.buffer;
}

/** A pipeline recording what it paints, fails and resyncs; `settled()` waits for the queue to empty. */
function recorder() {
  const log = [];
  const pipeline = new FramePipeline({
    paint: (frame) => log.push(`paint ${frame.seq}`),
    fail: (error) => log.push(`fail ${error.message}`),
    resync: () => log.push('resync'),
  });
  const settled = async () => {
    for (let i = 0; i < 200 && pipeline.queue.length; i += 1) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(pipeline.queue.length, 0, 'the queue drained');
  };
  return { log, pipeline, settled };
}

test('decodes on the main thread where there is no Worker', () => {
  const { pipeline } = recorder();
  assert.equal(pipeline.decoder, 'main');
  pipeline.close();
});

test('paints in arrival order even when a later frame decodes first', async () => {
  const { log, pipeline, settled } = recorder();
  pipeline.push(grayFrame({ seq: 1, width: 512, height: 512, zlib: true })); // slow: inflated
  pipeline.push(grayFrame({ seq: 2, x: 600 })); // fast: raw
  await settled();
  assert.deepEqual(log, ['paint 1', 'paint 2']);
  pipeline.close();
});

test('a waiting frame covered by the next one is dropped, never decoded', async () => {
  const { log, pipeline, settled } = recorder();
  pipeline.push(grayFrame({ seq: 1, x: 100 }));
  pipeline.push(grayFrame({ seq: 2, x: 200 })); // both decoding now (two in flight)
  pipeline.push(grayFrame({ seq: 3, x: 10, y: 10, width: 4, height: 4 })); // waits
  pipeline.push(grayFrame({ seq: 4, x: 0, y: 0, width: 50, height: 50 })); // covers 3
  await settled();
  assert.deepEqual(log, ['paint 1', 'paint 2', 'paint 4']);
  assert.equal(pipeline.dropped, 1);
  pipeline.close();
});

test('a malformed frame is reported in its place and the next ones still paint', async () => {
  const { log, pipeline, settled } = recorder();
  pipeline.push(grayFrame({ seq: 1 }));
  pipeline.push(new Uint8Array([1, 2, 3]).buffer);
  pipeline.push(grayFrame({ seq: 3, x: 5 }));
  await settled();
  assert.deepEqual(log, ['paint 1', 'fail frame shorter than its header (3 of 24 bytes)', 'paint 3']);
  pipeline.close();
});

test('more than 32 waiting frames are dropped at once and the whole screen asked for', async () => {
  const { log, pipeline, settled } = recorder();
  for (let seq = 1; seq <= 2 + 33; seq += 1) pipeline.push(grayFrame({ seq, x: seq * 2 }));
  await settled();
  assert.deepEqual(log, ['resync', 'paint 1', 'paint 2']);
  assert.equal(pipeline.resyncs, 1);
  assert.equal(pipeline.dropped, 33);
  pipeline.close();
});
