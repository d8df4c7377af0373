// @ts-check
// H.264 in the frame worker (frame-worker.js): `binary_v1` encoding-4
// access units decoded with WebCodecs' `VideoDecoder`, one at a time, and
// what they paint cut out as RGBA8 pixels: the whole picture for a unit
// marked last, else each encoding-5 region that follows it, from the last
// decoded picture (drawn on an OffscreenCanvas only when something is cut
// from it: a joining viewer's catch-up units are decoded, never drawn).
//
// A stream decodes only from a key frame and only with every unit, in
// order. So units are skipped until a key frame: at first, after a decode
// error, and after `reset` (the pipeline dropped frames and asked for the
// whole screen, and the appliance restarts this viewer's video at a key
// frame). The regions of a skipped unit paint nothing. A failure is thrown
// once, for the unit it happened on; the units after it are skipped.

import { Encoding } from './frames.js';
import { codecString } from './h264.js';

/** What `h264Supported` asks for: High profile, level 4.0 (what hosts' libx264 streams need). */
export const PROBE_CODEC = 'avc1.640028';
/** How long one unit's picture may take to come out of the decoder. */
const OUTPUT_TIMEOUT_MS = 5_000;

/** @typedef {import('./frames.js').FrameHeader} FrameHeader */
/** @typedef {import('./frames.js').DecodedFrame} DecodedFrame */
/** @typedef {{x: number, y: number, width: number, height: number}} Rect */

/**
 * The worker's running counts (the pipeline shows them to tests).
 * @typedef {object} VideoCounts
 * @property {number} decoded  access units decoded
 * @property {number} skipped  access units skipped while waiting for a key frame
 * @property {number} errors   units that failed to decode
 */

/**
 * Whether H.264 can be decoded here: WebCodecs, an OffscreenCanvas, and a
 * decoder for a High-profile stream.
 * @returns {Promise<boolean>}
 */
export async function h264Supported() {
  if (typeof VideoDecoder !== 'function' || typeof OffscreenCanvas !== 'function') return false;
  try {
    const { supported } = await VideoDecoder.isConfigSupported({ codec: PROBE_CODEC, optimizeForLatency: true });
    return supported === true;
  } catch {
    return false;
  }
}

/**
 * A frame's fields without its payload, with `rgba` and, when it paints
 * nothing, width and height 0.
 * @param {FrameHeader} header
 * @param {Uint8ClampedArray<ArrayBuffer> | null} rgba  null: paints nothing
 * @returns {DecodedFrame}
 */
function decoded(header, rgba) {
  const { payload, ...fields } = header;
  void payload;
  return rgba ? { ...fields, rgba } : { ...fields, width: 0, height: 0, rgba: new Uint8ClampedArray(0) };
}

export class H264Decoder {
  constructor() {
    /** @type {VideoDecoder | null} null until the first key frame, and after it failed */
    this.decoder = null;
    /** @type {string | null} the codec string `decoder` is configured with */
    this.codec = null;
    /** Units are skipped until a key frame. */
    this.needKey = true;
    /** @type {Rect | null} the picture of the last unit, when it was decoded */
    this.picture = null;
    /** @type {VideoFrame | null} that picture, until it is drawn on the canvas */
    this.held = null;
    /** @type {OffscreenCanvas | null} */
    this.canvas = null;
    /** @type {OffscreenCanvasRenderingContext2D | null} */
    this.context = null;
    /** @type {{timestamp: number, resolve: (frame: VideoFrame) => void, reject: (error: Error) => void} | null} the unit awaiting its picture */
    this.waiting = null;
    this.timestamp = 0;
    /** @type {VideoCounts} */
    this.counts = { decoded: 0, skipped: 0, errors: 0 };
  }

  /**
   * One parsed H.264 frame message (encoding 4 or 5): resolves to the
   * pixels it paints (width and height 0 when none); rejects when the unit
   * cannot be decoded.
   * @param {FrameHeader} header
   * @returns {Promise<DecodedFrame>}
   */
  async decode(header) {
    return header.encoding === Encoding.H264 ? this.unit(header) : this.region(header);
  }

  /** @param {FrameHeader} header  an access unit */
  async unit(header) {
    if (header.keyFrame) this.needKey = false;
    // The regions of a unit that is skipped or fails paint nothing.
    this.picture = null;
    if (this.needKey) {
      this.counts.skipped += 1;
      return decoded(header, null);
    }
    try {
      this.hold(await this.decodeUnit(header));
    } catch (error) {
      this.counts.errors += 1;
      this.reset();
      throw error;
    }
    this.counts.decoded += 1;
    const { x, y, width, height } = header;
    this.picture = { x, y, width, height };
    return header.last ? this.cut(header) : decoded(header, null);
  }

  /** @param {FrameHeader} header  a region of the last unit's picture */
  region(header) {
    const picture = this.picture;
    if (!header.width || !header.height || !picture) return decoded(header, null);
    const { x, y, width, height } = header;
    if (x < picture.x || y < picture.y || x + width > picture.x + picture.width || y + height > picture.y + picture.height) {
      throw new Error(`an H.264 region (${width}×${height} at ${x},${y}) outside its picture (${picture.width}×${picture.height} at ${picture.x},${picture.y})`);
    }
    return this.cut(header);
  }

  /**
   * Decodes one access unit; resolves to its picture.
   * @param {FrameHeader} header
   * @returns {Promise<VideoFrame>}
   */
  async decodeUnit({ keyFrame, payload }) {
    if (keyFrame) this.configure(payload);
    const decoder = this.decoder;
    if (decoder?.state !== 'configured') throw new Error('the H.264 decoder stopped');
    const timestamp = this.timestamp;
    this.timestamp += 1;
    /** @type {Promise<VideoFrame>} */
    const picture = new Promise((resolve, reject) => {
      this.waiting = { timestamp, resolve, reject };
    });
    const timer = setTimeout(() => this.waiting?.reject(new Error('the H.264 decoder gave no picture for a unit')), OUTPUT_TIMEOUT_MS);
    try {
      decoder.decode(new EncodedVideoChunk({ type: keyFrame ? 'key' : 'delta', timestamp, data: payload }));
      return await picture;
    } finally {
      clearTimeout(timer);
      this.waiting = null;
    }
  }

  /**
   * A key frame: a decoder configured for its stream (a new one after a
   * failure, configured again when the codec string changes).
   * @param {Uint8Array} payload
   */
  configure(payload) {
    const codec = codecString(payload);
    if (!codec) throw new Error('an H.264 key frame without a sequence parameter set');
    if (!this.decoder || this.decoder.state === 'closed') {
      this.decoder = new VideoDecoder({ output: (frame) => this.onOutput(frame), error: (error) => this.onError(error) });
      this.codec = null;
    }
    if (codec !== this.codec || this.decoder.state !== 'configured') {
      this.decoder.configure({ codec, optimizeForLatency: true });
      this.codec = codec;
    }
  }

  /** @param {VideoFrame} frame */
  onOutput(frame) {
    const waiting = this.waiting;
    if (waiting && frame.timestamp === waiting.timestamp) {
      waiting.resolve(frame);
    } else {
      frame.close(); // a unit's late picture, given up on already
    }
  }

  /** @param {DOMException} error */
  onError(error) {
    // The decoder closed itself: the next key frame gets a new one.
    this.decoder = null;
    this.codec = null;
    this.waiting?.reject(new Error(`the H.264 decoder failed (${error.message})`));
  }

  /**
   * Keeps `frame` as the last picture (closing the one before).
   * @param {VideoFrame | null} frame
   */
  hold(frame) {
    this.held?.close();
    this.held = frame;
  }

  /**
   * `rect` (screen coordinates, inside the picture) of the last picture, as RGBA8.
   * @param {FrameHeader} rect
   */
  cut(rect) {
    const picture = /** @type {Rect} */ (this.picture);
    const context = this.draw(picture);
    const image = context.getImageData(rect.x - picture.x, rect.y - picture.y, rect.width, rect.height);
    return decoded(rect, image.data);
  }

  /**
   * The canvas with the last picture on it, drawn from its frame the first
   * time: its top-left `width` × `height` (a decoded frame may be larger,
   * rounded up to whole macroblocks).
   * @param {Rect} picture
   */
  draw({ width, height }) {
    if (!this.canvas || !this.context) {
      this.canvas = new OffscreenCanvas(width, height);
      this.context = /** @type {OffscreenCanvasRenderingContext2D} */ (this.canvas.getContext('2d', { alpha: false, willReadFrequently: true }));
    }
    if (this.held) {
      if (this.canvas.width !== width || this.canvas.height !== height) {
        this.canvas.width = width;
        this.canvas.height = height;
      }
      this.context.drawImage(this.held, 0, 0);
      this.hold(null);
    }
    return this.context;
  }

  /** Waits for the next key frame: nothing decoded so far decodes what follows. */
  reset() {
    this.needKey = true;
    this.picture = null;
    this.hold(null);
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.reset();
    this.codec = null;
  }
}
