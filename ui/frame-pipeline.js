// @ts-check
// The viewer's frame pipeline: `binary_v1` frame messages in, in the order
// the socket delivers them; decoded frames out to `paint`, in that same
// order. Decoding (zlib inflate, gray → RGBA) runs in a Web Worker
// (frame-worker.js) when the browser can start one, else on this thread
// (frames.js `decodeFrame`); buffers are transferred both ways, not copied.
//
// Bounds. A browser WebSocket cannot be told to stop reading, and once
// decoding leaves the main thread nothing slows the `message` events down,
// so this pipeline bounds itself:
// - at most MAX_IN_FLIGHT frames are being decoded at a time (one decoding,
//   one queued in the worker, so it never waits for the main thread);
// - a frame still waiting for its turn is dropped when the frame that
//   arrives right after it covers it whole (the gateway's full-screen
//   updates): it would be painted over at once, and so it is never decoded;
// - should the waiting frames still pile up (more than MAX_WAITING of them
//   or MAX_WAITING_BYTES), all of them are dropped and `resync` is called at
//   once, which asks the gateway for the whole screen (re-sending the colour
//   mode does that): the whole screen then comes after every dropped frame
//   and covers it.
// A rectangle is thus never skipped unless a later one covers it.

import { parseHeader, decodeFrame } from './frames.js';

const MAX_IN_FLIGHT = 2;
const MAX_WAITING = 32;
const MAX_WAITING_BYTES = 64 * 1024 * 1024;

/**
 * Whether painting `later` right after `earlier` leaves the canvas as
 * painting both would: `later` covers `earlier`, and `earlier` is not a
 * rectangle at the origin of another size (which could be the answer to a
 * resize, and size the canvas differently).
 */
function covers(later, earlier) {
  if (earlier.x === 0 && earlier.y === 0 && (earlier.width !== later.width || earlier.height !== later.height)) return false;
  return (
    later.x <= earlier.x &&
    later.y <= earlier.y &&
    later.x + later.width >= earlier.x + earlier.width &&
    later.y + later.height >= earlier.y + earlier.height
  );
}

/** @typedef {import('./frames.js').FrameHeader} FrameHeader */
/** @typedef {import('./frames.js').DecodedFrame} DecodedFrame */

/**
 * A frame message on its way through the pipeline.
 * @typedef {object} Entry
 * @property {number} id
 * @property {ArrayBuffer | null} buffer  until it is decoded (or dropped)
 * @property {FrameHeader | null} header  null when the header is malformed
 * @property {'waiting' | 'decoding' | 'done' | 'failed'} state
 * @property {DecodedFrame | null} frame
 * @property {unknown} error
 */

export class FramePipeline {
  /**
   * `paint(frame)` gets each decoded frame (`{x, y, width, height, seq,
   * last, colorMode, encoding, rgba}`), in order; `fail(error)` each frame
   * that could not be decoded or painted; `resync()` asks for the whole
   * screen.
   * @param {{paint: (frame: DecodedFrame) => void, fail: (error: unknown) => void, resync: () => void}} hooks
   */
  constructor({ paint, fail, resync }) {
    this.paint = paint;
    this.fail = fail;
    this.resync = resync;
    /** @type {Entry[]} entries in arrival order: waiting, decoding, done or failed */
    this.queue = [];
    this.nextId = 1;
    this.inFlight = 0;
    this.waiting = 0;
    this.waitingBytes = 0;
    this.dropped = 0; // frames never decoded: covered by a later one, or resynced
    this.resyncs = 0;
    /** @type {Map<number, Entry>} id → entry being decoded by the worker */
    this.sent = new Map();
    /** @type {Worker | null} */
    this.worker = null;
    this.workerReady = false;
    this.closed = false;
    this.startWorker();
  }

  /**
   * Where frames are decoded now: 'worker' or 'main'.
   * @returns {'worker' | 'main'}
   */
  get decoder() {
    return this.workerReady ? 'worker' : 'main';
  }

  startWorker() {
    if (typeof Worker !== 'function') return;
    let worker;
    try {
      worker = new Worker(new URL('./frame-worker.js', import.meta.url), { type: 'module', name: 'rap-frame-decoder' });
    } catch {
      return; // no module workers, or not allowed here: decode on this thread
    }
    this.worker = worker;
    worker.addEventListener('message', (event) => this.onWorkerMessage(event.data));
    worker.addEventListener('error', (event) => {
      event.preventDefault();
      this.stopWorker(new Error(`the frame decoder stopped${event.message ? ` (${event.message})` : ''}`));
    });
    worker.addEventListener('messageerror', () => this.stopWorker(new Error('the frame decoder sent an unreadable message')));
  }

  /**
   * Gives up on the worker: frames it held fail, the next ones decode here.
   * @param {Error} error
   */
  stopWorker(error) {
    if (!this.worker) return;
    this.worker.terminate();
    this.worker = null;
    this.workerReady = false;
    const lost = [...this.sent.values()];
    this.sent.clear();
    for (const entry of lost) this.settle(entry, null, error);
  }

  onWorkerMessage(data) {
    if (this.closed) return;
    if ('ready' in data) {
      if (data.ready) this.workerReady = true;
      else this.stopWorker(new Error('the frame decoder cannot decode here'));
      return;
    }
    const entry = this.sent.get(data.id);
    if (!entry) return;
    this.sent.delete(data.id);
    if (data.error !== undefined) {
      this.settle(entry, null, new Error(data.error));
    } else {
      this.settle(entry, { ...data.header, rgba: new Uint8ClampedArray(data.rgba, data.offset, data.length) }, null);
    }
  }

  /**
   * One frame message from the socket (its buffer is handed over: it is detached after).
   * @param {ArrayBuffer} buffer
   */
  push(buffer) {
    if (this.closed) return;
    /** @type {Entry} */
    const entry = { id: this.nextId, buffer, header: null, state: 'waiting', frame: null, error: null };
    this.nextId += 1;
    try {
      entry.header = parseHeader(buffer);
    } catch (error) {
      entry.state = 'failed';
      entry.error = error;
      entry.buffer = null;
    }
    if (entry.header) {
      // Drop the waiting frames just before this one that it paints over.
      for (let tail = this.queue.at(-1); tail?.state === 'waiting' && covers(entry.header, tail.header); tail = this.queue.at(-1)) {
        this.queue.pop();
        this.forget(tail);
      }
      this.waiting += 1;
      this.waitingBytes += buffer.byteLength;
    }
    this.queue.push(entry);
    if (this.waiting > MAX_WAITING || this.waitingBytes > MAX_WAITING_BYTES) this.overflow();
    this.pump();
    this.drain();
  }

  /** A waiting entry leaves the queue undecoded. */
  forget(entry) {
    this.waiting -= 1;
    this.waitingBytes -= entry.buffer.byteLength;
    entry.buffer = null;
    this.dropped += 1;
  }

  /** Too much waiting: drop all of it and ask for the whole screen (see the top). */
  overflow() {
    const kept = [];
    for (const entry of this.queue) {
      if (entry.state === 'waiting') this.forget(entry);
      else kept.push(entry);
    }
    this.queue = kept;
    this.resyncs += 1;
    this.resync();
  }

  /** Starts decoding waiting frames, oldest first, up to MAX_IN_FLIGHT. */
  pump() {
    while (this.inFlight < MAX_IN_FLIGHT && this.waiting > 0) {
      const entry = this.queue.find((candidate) => candidate.state === 'waiting');
      const { buffer } = entry;
      this.waiting -= 1;
      this.waitingBytes -= buffer.byteLength;
      entry.buffer = null;
      entry.state = 'decoding';
      this.inFlight += 1;
      if (this.workerReady) {
        this.sent.set(entry.id, entry);
        this.worker.postMessage({ id: entry.id, buffer }, [buffer]);
      } else {
        decodeFrame(buffer).then(
          (frame) => this.settle(entry, frame, null),
          (error) => this.settle(entry, null, error),
        );
      }
    }
  }

  settle(entry, frame, error) {
    if (this.closed || entry.state !== 'decoding') return;
    this.inFlight -= 1;
    entry.state = error ? 'failed' : 'done';
    entry.frame = frame;
    entry.error = error;
    this.pump();
    this.drain();
  }

  /** Paints (or reports) the frames at the head of the queue that are ready, in order. */
  drain() {
    while (!this.closed && this.queue.length && (this.queue[0].state === 'done' || this.queue[0].state === 'failed')) {
      const entry = this.queue.shift();
      if (entry.state === 'failed') {
        this.fail(entry.error);
        continue;
      }
      try {
        this.paint(entry.frame);
      } catch (error) {
        this.fail(error);
      }
    }
  }

  close() {
    this.closed = true;
    this.queue = [];
    this.sent.clear();
    this.worker?.terminate();
    this.worker = null;
    this.workerReady = false;
  }
}
