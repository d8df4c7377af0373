// @ts-check
// The viewer's frame pipeline: `binary_v1` frame messages in, in the order
// the socket delivers them; decoded frames out to `paint`, in that same
// order. Decoding (zlib inflate, gray → RGBA, H.264) runs in a Web Worker
// (frame-worker.js) when the browser can start one, else on this thread
// (frames.js `decodeFrame`, pixels only); buffers are transferred both
// ways, not copied. H.264 (encodings 4 and 5) is decoded only in the
// worker: `whenReady()` waits (bounded) for it to say whether it can, and
// `decodesH264` says so, for the attach to ask for H.264 or not.
//
// Bounds. A browser WebSocket cannot be told to stop reading, and once
// decoding leaves the main thread nothing slows the `message` events down,
// so this pipeline bounds itself:
// - at most MAX_IN_FLIGHT frames are being decoded at a time (one decoding,
//   one queued in the worker, so it never waits for the main thread);
// - a pixel frame still waiting for its turn is dropped when the pixel
//   frame that arrives right after it covers it whole (the gateway's
//   full-screen updates): it would be painted over at once, and so it is
//   never decoded. H.264 messages are never dropped so: every unit must be
//   decoded, in order, for the ones after it to decode;
// - should the waiting frames still pile up (more than MAX_WAITING pixel
//   frames, MAX_WAITING_VIDEO H.264 messages, or MAX_WAITING_BYTES in all),
//   all of them are dropped and `resync` is called at once, which asks the
//   gateway for the whole screen (re-sending the colour mode does that):
//   the whole screen then comes after every dropped frame and covers it,
//   and the worker skips H.264 units until the key frame the gateway
//   restarts this viewer's video at;
// - an H.264 unit the worker fails to decode is reported once (it skips
//   units until the next key frame) and resyncs the same way.
// A rectangle is thus never skipped unless a later one covers it.

import { parseHeader, decodeFrame, isVideo } from './frames.js';

const MAX_IN_FLIGHT = 2;
const MAX_WAITING = 32;
/**
 * A joining viewer's catch-up comes at once: every unit since the key
 * frame (the appliance keeps at most 2048), each with its regions.
 */
const MAX_WAITING_VIDEO = 8192;
const MAX_WAITING_BYTES = 64 * 1024 * 1024;
/** How long `whenReady` waits for the worker by default. */
export const READY_TIMEOUT_MS = 2_000;

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
 * @property {boolean} video  an H.264 message (encoding 4 or 5)
 * @property {boolean} resync  its failure was the worker's H.264 decoder's: ask for the whole screen
 * @property {unknown} tag  the caller's, from `push` (which socket it came on)
 */

/**
 * H.264 counts, for the status and the tests: units the worker decoded,
 * skipped (waiting for a key frame) and failed on; rectangles painted
 * from decoded pictures; resyncs after a failure.
 * @typedef {{decoded: number, skipped: number, errors: number, painted: number, resyncs: number}} VideoStats
 */

export class FramePipeline {
  /**
   * `paint(frame)` gets each decoded frame (`{x, y, width, height, seq,
   * last, colorMode, encoding, rgba}`; width and height 0: it paints
   * nothing), in order; `fail(error)` each frame that could not be decoded
   * or painted; `resync()` asks for the whole screen; `h264Lost()` says
   * the worker stopped after it said it decodes H.264 (this thread cannot:
   * a socket that gets H.264 must attach again without it); `done(header,
   * tag)` each frame that leaves the pipeline in order, painted or failed
   * (not one dropped under a later one), with the tag it was pushed with.
   * @param {{paint: (frame: DecodedFrame) => void, fail: (error: unknown) => void, resync: () => void, h264Lost?: () => void, done?: (header: FrameHeader | null, tag: unknown) => void}} hooks
   */
  constructor({ paint, fail, resync, h264Lost = () => {}, done = () => {} }) {
    this.paint = paint;
    this.done = done;
    this.fail = fail;
    this.resync = resync;
    this.h264Lost = h264Lost;
    /** @type {Entry[]} entries in arrival order: waiting, decoding, done or failed */
    this.queue = [];
    this.nextId = 1;
    this.inFlight = 0;
    this.waiting = 0;
    this.waitingVideo = 0;
    this.waitingBytes = 0;
    this.dropped = 0; // frames never decoded: covered by a later one, or resynced
    this.resyncs = 0;
    /** @type {Map<number, Entry>} id → entry being decoded by the worker */
    this.sent = new Map();
    /** @type {VideoStats} */
    this.video = { decoded: 0, skipped: 0, errors: 0, painted: 0, resyncs: 0 };
    /** @type {Worker | null} */
    this.worker = null;
    this.workerReady = false;
    /** The worker can decode H.264 (its `ready` said so). */
    this.workerH264 = false;
    /** @type {() => void} settles `ready` */
    this.settleReady = () => {};
    /** Settles once the worker said whether it decodes, or is gone (at once without one). */
    this.ready = new Promise((resolve) => {
      this.settleReady = () => resolve(undefined);
    });
    this.closed = false;
    this.startWorker();
    if (!this.worker) this.settleReady();
  }

  /** Whether H.264 frames can be decoded here: the worker runs and said it can. */
  get decodesH264() {
    return this.workerReady && this.workerH264;
  }

  /**
   * Resolves once the worker said whether it decodes (H.264 included), it
   * is gone, or `timeout` ms passed: then `decodesH264` is the answer.
   * @param {number} [timeout]
   * @returns {Promise<void>}
   */
  whenReady(timeout = READY_TIMEOUT_MS) {
    let timer;
    const late = new Promise((resolve) => {
      timer = setTimeout(resolve, timeout);
    });
    return Promise.race([this.ready, late]).then(() => clearTimeout(timer));
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
    const hadH264 = this.decodesH264;
    this.worker.terminate();
    this.worker = null;
    this.workerReady = false;
    this.workerH264 = false;
    this.settleReady();
    const lost = [...this.sent.values()];
    this.sent.clear();
    for (const entry of lost) this.settle(entry, null, error);
    if (hadH264 && !this.closed) this.h264Lost();
  }

  onWorkerMessage(data) {
    if (this.closed) return;
    if ('ready' in data) {
      if (data.ready) {
        this.workerReady = true;
        this.workerH264 = data.h264 === true;
        this.settleReady();
      } else {
        this.stopWorker(new Error('the frame decoder cannot decode here'));
      }
      return;
    }
    const entry = this.sent.get(data.id);
    if (!entry) return;
    this.sent.delete(data.id);
    if (data.video) Object.assign(this.video, { decoded: data.video.decoded, skipped: data.video.skipped, errors: data.video.errors });
    if (data.error !== undefined) {
      entry.resync = Boolean(data.video);
      this.settle(entry, null, new Error(data.error));
    } else {
      this.settle(entry, { ...data.header, rgba: new Uint8ClampedArray(data.rgba, data.offset, data.length) }, null);
    }
  }

  /**
   * One frame message from the socket (its buffer is handed over: it is detached after).
   * @param {ArrayBuffer} buffer
   * @param {unknown} [tag]  handed back with the frame to `done`
   */
  push(buffer, tag) {
    if (this.closed) return;
    /** @type {Entry} */
    const entry = { id: this.nextId, buffer, header: null, state: 'waiting', frame: null, error: null, video: false, resync: false, tag };
    this.nextId += 1;
    try {
      entry.header = parseHeader(buffer);
    } catch (error) {
      entry.state = 'failed';
      entry.error = error;
      entry.buffer = null;
    }
    if (entry.header) {
      entry.video = isVideo(entry.header.encoding);
      // Drop the waiting pixel frames just before this one that it paints
      // over (an H.264 message is never dropped, nor drops one).
      if (!entry.video) {
        for (let tail = this.queue.at(-1); tail?.state === 'waiting' && !tail.video && covers(entry.header, tail.header); tail = this.queue.at(-1)) {
          this.queue.pop();
          this.forget(tail);
        }
      }
      this.count(entry, 1);
    }
    this.queue.push(entry);
    const pixels = this.waiting - this.waitingVideo;
    if (pixels > MAX_WAITING || this.waitingVideo > MAX_WAITING_VIDEO || this.waitingBytes > MAX_WAITING_BYTES) this.overflow();
    this.pump();
    this.drain();
  }

  /**
   * Counts a waiting entry in (`sign` 1) or out (-1).
   * @param {Entry} entry
   * @param {1 | -1} sign
   */
  count(entry, sign) {
    this.waiting += sign;
    if (entry.video) this.waitingVideo += sign;
    this.waitingBytes += sign * entry.buffer.byteLength;
  }

  /**
   * A waiting entry leaves the queue undecoded.
   * @param {Entry} entry
   */
  forget(entry) {
    this.count(entry, -1);
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
    // H.264 units may have been dropped: the next ones decode only from a key frame.
    if (this.workerReady) this.worker.postMessage({ reset: true });
    this.resync();
  }

  /** Starts decoding waiting frames, oldest first, up to MAX_IN_FLIGHT. */
  pump() {
    while (this.inFlight < MAX_IN_FLIGHT && this.waiting > 0) {
      const entry = this.queue.find((candidate) => candidate.state === 'waiting');
      const { buffer } = entry;
      this.count(entry, -1);
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
      this.done(entry.header, entry.tag);
      if (entry.state === 'failed') {
        this.fail(entry.error);
        if (entry.resync) {
          // The worker waits for a key frame: ask for the whole screen, and the video from one.
          this.video.resyncs += 1;
          this.resync();
        }
        continue;
      }
      try {
        this.paint(entry.frame);
        if (entry.video && entry.frame.width && entry.frame.height) this.video.painted += 1;
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
    this.settleReady();
  }
}
