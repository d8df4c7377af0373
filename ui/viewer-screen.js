// @ts-check
// The viewer's screen: the canvas the remote desktop is drawn on, fed by
// the frame pipeline (frame-pipeline.js decodes `binary_v1` frames, this
// paints them in order), scaled to fit its stage, resized when the remote
// desktop is, the colour mode the gateway renders in, and whether the
// picture comes as the host's H.264 video or as pixels.

import { FramePipeline } from './frame-pipeline.js';

/** Where the colour mode is remembered between sessions. */
export const COLOR_MODE_KEY = 'rap.viewer.color_mode';
/** How long a remote resize may take before its answer is no longer awaited. */
const RESIZE_ANSWER_MS = 5_000;

/** @typedef {'full_color' | 'grayscale'} ColorMode */
/** @typedef {{width: number, height: number}} Size */

/**
 * `value` rounded down to an even number within `low`…`high` (remote
 * desktops want even sizes).
 * @param {number} value
 * @param {number} low
 * @param {number} high
 */
export function evenWithin(value, low, high) {
  return Math.max(low, Math.min(high, Math.floor(value / 2) * 2));
}

/**
 * A session size that fits this window (the remote desktop's first size):
 * what the viewer's stage will get, the window less the bars around it.
 * @returns {Size}
 */
export function windowSize() {
  return { width: evenWithin(window.innerWidth - 18, 640, 7680), height: evenWithin(window.innerHeight - 190, 480, 4320) };
}

/**
 * The size to ask the remote desktop for so it fills a stage of
 * `stageWidth` × `stageHeight` (0 when the stage has no size yet: then
 * `fallback`), within the live plane's 64–7680 × 64–4320.
 * @param {number} stageWidth
 * @param {number} stageHeight
 * @param {() => Size} [fallback]
 * @returns {Size}
 */
export function resizeTarget(stageWidth, stageHeight, fallback = windowSize) {
  return { width: evenWithin(stageWidth || fallback().width, 64, 7680), height: evenWithin(stageHeight || fallback().height, 64, 4320) };
}

/**
 * The CSS size of a `width` × `height` canvas scaled to fit the stage
 * with its aspect ratio kept; null while the stage has no size.
 * @param {number} stageWidth
 * @param {number} stageHeight
 * @param {number} width
 * @param {number} height
 * @returns {Size | null}
 */
export function fitSize(stageWidth, stageHeight, width, height) {
  if (!stageWidth || !stageHeight) return null;
  const scale = Math.min(stageWidth / width, stageHeight / height);
  return { width: Math.floor(width * scale), height: Math.floor(height * scale) };
}

/**
 * The colour mode remembered in `storage` (full colour unless grayscale).
 * @param {{getItem(key: string): string | null}} storage
 * @returns {ColorMode}
 */
export function storedColorMode(storage) {
  return storage.getItem(COLOR_MODE_KEY) === 'grayscale' ? 'grayscale' : 'full_color';
}

/**
 * The codecs to attach with: H.264 when this browser decodes it (in the
 * frame worker) and the picture is in full colour (the gateway sends
 * H.264 in full colour only).
 * @param {boolean} decodesH264
 * @param {ColorMode} colorMode
 * @returns {string[]}
 */
export function attachCodecs(decodesH264, colorMode) {
  return decodesH264 && colorMode === 'full_color' ? ['h264'] : [];
}

/**
 * How the picture comes, for the status bar: the host's H.264 video when
 * `session.attached` granted it and the picture is in full colour
 * (grayscale is always pixels), else pixels.
 * @param {string[]} codecs  `session.attached`'s `codecs`
 * @param {ColorMode} colorMode
 * @returns {'h264' | 'pixels'}
 */
export function picturePath(codecs, colorMode) {
  return codecs.includes('h264') && colorMode === 'full_color' ? 'h264' : 'pixels';
}

/**
 * @typedef {object} ScreenHooks
 * @property {(type: string, payload?: object) => boolean} send
 * @property {(error: unknown) => void} fail  a frame could not be decoded or painted
 * @property {() => void} reattach  attach again (the H.264 decoder is gone: pixels only from now)
 */

export class RemoteScreen {
  /**
   * @param {HTMLCanvasElement} canvas  what the remote desktop is drawn on
   * @param {HTMLElement} stage         the box the canvas is scaled to fit
   * @param {ScreenHooks} hooks
   */
  constructor(canvas, stage, { send, fail, reattach }) {
    this.canvas = canvas;
    this.stage = stage;
    this.context = canvas.getContext('2d', { alpha: false });
    this.send = send;
    this.destroyed = false;
    /** Blanked until the next frame arrives (frames still queued are not painted). */
    this.blanked = false;
    /** @type {ColorMode} */
    this.colorMode = storedColorMode(localStorage);
    /** Counts the sockets attached, to tell whose frames are whose. */
    this.socket = 0;
    /** @type {string[]} the codecs `session.attached` granted this socket */
    this.codecs = [];
    /** Rectangles painted, all time (tests and the benchmark read it). */
    this.frames = 0;
    /** Updates completed since the last `takeUpdateCount` (the fps counter). */
    this.updatesThisSecond = 0;
    /** @type {Size | null} a `display.resize` whose whole-screen answer is awaited */
    this.pendingResize = null;
    this.pendingResizeTimer = undefined;
    // Frames are decoded off the main thread and painted here, in order.
    this.pipeline = new FramePipeline({
      paint: (frame) => this.paint(frame),
      fail,
      // Re-sending the colour mode makes the gateway send the whole screen.
      resync: () => this.send('color_mode', { color_mode: this.colorMode }),
      // H.264 decodes only in the worker: without it, this socket's units would go unpainted.
      h264Lost: () => {
        if (this.codecs.includes('h264')) reattach();
      },
      // An update is done once its last rectangle is painted (or failed):
      // the gateway may send the next. Frames of an earlier socket are not
      // this socket's to acknowledge.
      done: (header, socket) => {
        if (header?.last && socket === this.socket && !this.destroyed) this.send('render.ack', { seq: header.seq });
      },
    });
    this.observer = new ResizeObserver(() => this.fit());
    this.observer.observe(this.stage);
  }

  /** The codecs to attach with (wait for `pipeline.whenReady()` first). */
  attachCodecs() {
    return attachCodecs(this.pipeline.decodesH264, this.colorMode);
  }

  /** How the picture comes now: 'h264' or 'pixels'. */
  picturePath() {
    return picturePath(this.codecs, this.colorMode);
  }

  /**
   * One `binary_v1` frame message (handed over to the pipeline: detached after).
   * @param {ArrayBuffer} buffer
   */
  onFrame(buffer) {
    this.blanked = false;
    this.pipeline.push(buffer, this.socket);
  }

  /**
   * A new socket is attached (its frames' sequence numbers start over),
   * getting `codecs` of those it asked for.
   * @param {string[]} codecs
   */
  attached(codecs) {
    this.socket += 1;
    this.codecs = codecs;
  }

  /**
   * Wipes the picture: a device that lost the session (taken over, access
   * ended) should not keep showing the desktop either.
   */
  blank() {
    this.blanked = true;
    this.context.fillStyle = '#000';
    this.context.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  /** @param {import('./frames.js').DecodedFrame} frame */
  paint(frame) {
    const { x, y, width, height } = frame;
    if (this.destroyed) return;
    // An H.264 unit that only advances the decoder (or whose regions follow) paints nothing.
    if (this.blanked || !width || !height) return;
    const pending = this.pendingResize;
    if (pending && x === 0 && y === 0 && width === pending.width && height === pending.height) {
      // The whole screen at the asked size: the remote desktop resized.
      this.pendingResize = null;
      this.setCanvasSize(width, height);
    } else if (x + width > this.canvas.width || y + height > this.canvas.height) {
      this.setCanvasSize(Math.max(this.canvas.width, x + width), Math.max(this.canvas.height, y + height));
    }
    this.context.putImageData(new ImageData(frame.rgba, width, height), x, y);
    this.frames += 1;
    this.updatesThisSecond += frame.last ? 1 : 0;
    this.canvas.dataset.frames = String(this.frames);
  }

  /** Updates completed since the last call (the toolbar's fps). */
  takeUpdateCount() {
    const count = this.updatesThisSecond;
    this.updatesThisSecond = 0;
    return count;
  }

  /**
   * The remote desktop's size (from `session.attached`, or grown to a frame).
   * @param {number} width
   * @param {number} height
   */
  setCanvasSize(width, height) {
    if (!width || !height) return;
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    this.canvas.dataset.remoteWidth = String(width);
    this.canvas.dataset.remoteHeight = String(height);
    this.fit();
  }

  /** Scales the canvas to fit the stage, keeping the aspect ratio. */
  fit() {
    const size = fitSize(this.stage.clientWidth, this.stage.clientHeight, this.canvas.width, this.canvas.height);
    if (!size) return;
    this.canvas.style.width = `${size.width}px`;
    this.canvas.style.height = `${size.height}px`;
  }

  /**
   * Asks the remote desktop to take the stage's size; returns the size
   * asked for, or null when not connected.
   * @returns {Size | null}
   */
  resizeRemote() {
    const { width, height } = resizeTarget(this.stage.clientWidth, this.stage.clientHeight);
    // The frame that answers is the whole screen at the new size; a remote
    // side that does not resize never sends it, so forget it after a while.
    this.pendingResize = { width, height };
    clearTimeout(this.pendingResizeTimer);
    this.pendingResizeTimer = setTimeout(() => {
      this.pendingResize = null;
    }, RESIZE_ANSWER_MS);
    return this.send('display.resize', { width, height }) ? { width, height } : null;
  }

  /**
   * Switches between full colour and grayscale, remembers it, and tells
   * the gateway (which answers with the whole screen in the new mode).
   * @returns {ColorMode}
   */
  toggleColorMode() {
    this.colorMode = this.colorMode === 'grayscale' ? 'full_color' : 'grayscale';
    localStorage.setItem(COLOR_MODE_KEY, this.colorMode);
    this.send('color_mode', { color_mode: this.colorMode });
    return this.colorMode;
  }

  destroy() {
    this.destroyed = true;
    clearTimeout(this.pendingResizeTimer);
    this.pipeline.close();
    this.observer.disconnect();
  }
}
