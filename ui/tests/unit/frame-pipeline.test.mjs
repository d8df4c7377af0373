// frame-pipeline.js: frames are painted in the order they came, however
// long each takes to decode; a waiting frame that the next one covers is
// never decoded, unless it is H.264 (every unit must be decoded); too many
// waiting frames are dropped for a resync and the worker told to wait for
// a key frame. (Node has no Web Worker global, so these decode on the main
// thread, the pipeline's fallback, or in a stand-in worker that answers
// as the test says.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { FramePipeline } from '../../frame-pipeline.js';
import { HEADER_LEN, Encoding, FLAG_LAST, FLAG_KEY_FRAME } from '../../frames.js';

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

/** A `binary_v1` H.264 message: an access unit (encoding 4, a few payload bytes) or a region (5, none). */
function videoFrame({ seq, region = false, key = false, last = true, x = 0, y = 0, width = 64, height = 64 }) {
  const payload = region ? [] : [0, 0, 0, 1, key ? 0x65 : 0x41, 0x88];
  const out = new Uint8Array(HEADER_LEN + payload.length);
  const view = new DataView(out.buffer);
  out.set([0x52, 0x41, 0x50, 0x46, 1, region ? Encoding.H264_REGION : Encoding.H264, 0, (last ? FLAG_LAST : 0) | (key ? FLAG_KEY_FRAME : 0)]);
  view.setUint32(8, seq, true);
  view.setUint16(12, x, true);
  view.setUint16(14, y, true);
  view.setUint16(16, width, true);
  view.setUint16(18, height, true);
  view.setUint32(20, payload.length, true);
  out.set(payload, HEADER_LEN);
  return out.buffer;
}

/**
 * A stand-in for frame-worker.js: records what the pipeline posts and
 * answers only when the test says (`answer(id, reply)`), as the worker
 * would, with the counts of its H.264 decoder.
 */
function standInWorker(pipeline, { h264 = true } = {}) {
  const posted = [];
  pipeline.worker = /** @type {any} */ ({ postMessage: (message) => posted.push(message), terminate: () => {} });
  pipeline.onWorkerMessage({ ready: true, h264 });
  const answer = (id, reply) => pipeline.onWorkerMessage({ id, ...reply });
  /** Answers every frame message not answered yet with the pixels it would paint (none for H.264 units not marked last). */
  const answerAll = (video) => {
    for (const message of posted.splice(0)) {
      if (!('id' in message)) continue;
      const view = new DataView(message.buffer);
      const header = { encoding: view.getUint8(5), seq: view.getUint32(8, true), last: (view.getUint8(7) & FLAG_LAST) !== 0, x: 0, y: 0, width: 1, height: 1 };
      answer(message.id, { header, rgba: new ArrayBuffer(4), offset: 0, length: 4, ...(video ? { video } : {}) });
    }
  };
  return { posted, answer, answerAll };
}

/** A pipeline recording what it paints, fails and resyncs; `settled()` waits for the queue to empty. */
function recorder() {
  const log = [];
  const pipeline = new FramePipeline({
    paint: (frame) => log.push(`paint ${frame.seq}`),
    fail: (error) => log.push(`fail ${error.message}`),
    resync: () => log.push('resync'),
    h264Lost: () => log.push('h264 lost'),
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

test('a pixel frame that covers a waiting H.264 message does not drop it: every unit is decoded', async () => {
  const { log, pipeline, settled } = recorder();
  pipeline.push(grayFrame({ seq: 1, x: 100 }));
  pipeline.push(grayFrame({ seq: 2, x: 200 })); // both decoding
  pipeline.push(videoFrame({ seq: 3, last: false })); // waits
  pipeline.push(videoFrame({ seq: 3, region: true, width: 8, height: 8 })); // waits
  pipeline.push(grayFrame({ seq: 4, width: 100, height: 100 })); // covers both
  await settled();
  // Without a worker H.264 cannot be decoded at all, and says so in its place.
  const refused = 'fail H.264 frames are decoded in the frame worker only (this browser started none)';
  assert.deepEqual(log, ['paint 1', 'paint 2', refused, refused, 'paint 4']);
  assert.equal(pipeline.dropped, 0);
  assert.equal(pipeline.decodesH264, false);
  pipeline.close();
});

test('an H.264 message does not drop a waiting pixel frame it covers', async () => {
  const { log, pipeline, settled } = recorder();
  pipeline.push(grayFrame({ seq: 1, x: 100 }));
  pipeline.push(grayFrame({ seq: 2, x: 200 }));
  pipeline.push(grayFrame({ seq: 3, x: 10, y: 10, width: 4, height: 4 })); // waits
  pipeline.push(videoFrame({ seq: 4, key: true, width: 64, height: 64 })); // paints its whole picture, over 3
  await settled();
  assert.equal(log[2], 'paint 3');
  assert.equal(pipeline.dropped, 0);
  pipeline.close();
});

test('waiting H.264 messages are bounded apart from pixels: a joining viewer’s catch-up does not resync', () => {
  const { log, pipeline } = recorder();
  const worker = standInWorker(pipeline);
  pipeline.push(videoFrame({ seq: 1, key: true, last: false }));
  for (let seq = 2; seq <= 500; seq += 1) {
    pipeline.push(videoFrame({ seq, last: false }));
    pipeline.push(videoFrame({ seq, region: true, width: 0, height: 0 }));
  }
  assert.equal(pipeline.resyncs, 0);
  assert.equal(pipeline.dropped, 0);
  assert.equal(pipeline.waiting, 999 - 2, 'all waiting but the two in the worker');
  assert.deepEqual(log, []);
  for (let round = 0; round < 1000 && pipeline.queue.length; round += 1) worker.answerAll({ decoded: round, skipped: 0, errors: 0 });
  assert.equal(pipeline.queue.length, 0);
  assert.equal(log.length, 999, 'each painted in its turn');
  pipeline.close();
});

test('on overflow the worker is told to wait for a key frame, after the frames it holds', () => {
  const { log, pipeline } = recorder();
  const worker = standInWorker(pipeline);
  pipeline.push(videoFrame({ seq: 1, key: true }));
  pipeline.push(videoFrame({ seq: 2 }));
  for (let seq = 3; seq <= 3 + 32; seq += 1) pipeline.push(grayFrame({ seq, x: seq * 2 }));
  assert.deepEqual(log, ['resync']);
  assert.deepEqual(worker.posted.map((message) => ('reset' in message ? 'reset' : message.id)), [1, 2, 'reset']);
  assert.equal(pipeline.dropped, 33);
  pipeline.close();
});

test('an H.264 unit the worker fails on is reported once and asks for the whole screen', () => {
  const { log, pipeline } = recorder();
  const worker = standInWorker(pipeline);
  assert.equal(pipeline.decodesH264, true);
  pipeline.push(videoFrame({ seq: 1, key: true }));
  pipeline.push(videoFrame({ seq: 2 }));
  worker.answer(1, { header: { seq: 1, last: true, encoding: Encoding.H264, x: 0, y: 0, width: 1, height: 1 }, rgba: new ArrayBuffer(4), offset: 0, length: 4, video: { decoded: 1, skipped: 0, errors: 0 } });
  worker.answer(2, { error: 'the H.264 decoder failed (broken)', video: { decoded: 1, skipped: 0, errors: 1 } });
  assert.deepEqual(log, ['paint 1', 'fail the H.264 decoder failed (broken)', 'resync']);
  assert.deepEqual(pipeline.video, { decoded: 1, skipped: 0, errors: 1, painted: 1, resyncs: 1 });
  pipeline.close();
});

test('a pipeline without a worker is ready at once and decodes no H.264', async () => {
  const { pipeline } = recorder();
  const started = Date.now();
  await pipeline.whenReady(5_000);
  assert.ok(Date.now() - started < 1_000);
  assert.equal(pipeline.decodesH264, false);
  pipeline.close();
});

test('a worker that decoded H.264 and stops is reported: the socket must attach again without it', () => {
  const { log, pipeline } = recorder();
  const worker = standInWorker(pipeline);
  pipeline.push(videoFrame({ seq: 1, key: true }));
  assert.equal(worker.posted.length, 1);
  pipeline.stopWorker(new Error('the frame decoder stopped'));
  assert.deepEqual(log, ['fail the frame decoder stopped', 'h264 lost']);
  assert.equal(pipeline.decodesH264, false);
  assert.equal(pipeline.decoder, 'main');
  pipeline.close();
});

test('a worker without H.264 that stops is not reported as an H.264 loss', () => {
  const { log, pipeline } = recorder();
  standInWorker(pipeline, { h264: false });
  pipeline.stopWorker(new Error('the frame decoder stopped'));
  assert.deepEqual(log, []);
  pipeline.close();
});
