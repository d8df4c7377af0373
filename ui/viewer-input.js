// @ts-check
// The viewer's input: keyboard, mouse and wheel on the canvas become the
// live plane's `input.key`, `input.unicode` and `input.mouse` messages, in
// the remote desktop's pixels. Keys go by `KeyboardEvent.code` (the
// physical key: the remote side applies its own layout). Held keys and
// buttons are let go of when the canvas loses the keyboard.

/** Mouse buttons the live plane carries: left, right, middle, back, forward. */
const BUTTON_MASK = 0x1f;

/**
 * @typedef {{type: 'input.key', payload: {code: string, down: boolean}}
 *   | {type: 'input.unicode', payload: {text: string}}} KeyMessage
 */

/**
 * The message for a key going down or up, or null for a key that has
 * neither a physical code nor a single character.
 * @param {{code?: string, key?: string}} event
 * @param {boolean} down
 * @returns {KeyMessage | null}
 */
export function keyMessage(event, down) {
  if (event.code) return { type: 'input.key', payload: { code: event.code, down } };
  // No physical code (some virtual keyboards): send the character.
  if (down && event.key && event.key.length === 1) return { type: 'input.unicode', payload: { text: event.key } };
  return null;
}

/**
 * Ctrl+Alt+Home: the way out of the canvas for keyboard users.
 * @param {{ctrlKey: boolean, altKey: boolean, code: string}} event
 * @param {boolean} down
 */
export function isLeaveChord(event, down) {
  return down && event.ctrlKey && event.altKey && event.code === 'Home';
}

/**
 * A wheel event's `wheel_delta`: browsers count down as positive; one
 * notch is about 100 px (3 lines, or a fraction of a page), sent as 120
 * units; clamped to an i16. 0 means nothing to send.
 * @param {number} deltaY
 * @param {number} deltaMode  0 pixels, 1 lines, 2 pages
 */
export function wheelDelta(deltaY, deltaMode) {
  const scale = deltaMode === 1 ? 40 : deltaMode === 2 ? 800 : 1;
  return Math.max(-32768, Math.min(32767, Math.round(deltaY * scale * 1.2)));
}

/**
 * A point on the page as a pixel of the remote screen (`width` × `height`)
 * drawn in `rect`, clamped to the screen.
 * @param {number} clientX
 * @param {number} clientY
 * @param {{left: number, top: number, width: number, height: number}} rect
 * @param {number} width
 * @param {number} height
 * @returns {{x: number, y: number}}
 */
export function remotePoint(clientX, clientY, rect, width, height) {
  const clamp = (value, high) => Math.max(0, Math.min(high - 1, value));
  return {
    x: clamp(Math.floor(((clientX - rect.left) * width) / rect.width), width),
    y: clamp(Math.floor(((clientY - rect.top) * height) / rect.height), height),
  };
}

/**
 * @typedef {object} InputHooks
 * @property {(type: string, payload?: object) => boolean} send
 * @property {() => boolean} canInput  whether this viewer controls an open session now
 * @property {() => void} onLeave      the leave chord was pressed: move the keyboard off the canvas
 */

export class InputCapture {
  /**
   * @param {HTMLCanvasElement} canvas  the remote screen
   * @param {InputHooks} hooks
   */
  constructor(canvas, { send, canInput, onLeave }) {
    this.canvas = canvas;
    this.send = send;
    this.canInput = canInput;
    this.onLeave = onLeave;
    /** @type {Set<string>} codes held down on the remote side */
    this.heldKeys = new Set();
    this.buttons = 0;
    this.pointer = { x: 0, y: 0 };
    this.pendingMove = false;
    /** @type {(() => void)[]} */
    this.cleanups = [];
  }

  /**
   * @param {EventTarget} target
   * @param {string} type
   * @param {(event: any) => void} handler
   * @param {AddEventListenerOptions} [options]
   */
  listen(target, type, handler, options) {
    target.addEventListener(type, handler, options);
    this.cleanups.push(() => target.removeEventListener(type, handler, options));
  }

  /** Starts listening on the canvas (and the window, for losing focus). */
  bind() {
    const canvas = this.canvas;
    this.listen(canvas, 'keydown', (event) => this.onKey(event, true));
    this.listen(canvas, 'keyup', (event) => this.onKey(event, false));
    this.listen(canvas, 'blur', () => this.releaseAll());
    this.listen(window, 'blur', () => this.releaseAll());
    this.listen(document, 'visibilitychange', () => {
      if (document.hidden) this.releaseAll();
    });
    this.listen(canvas, 'pointerdown', (event) => {
      canvas.focus({ preventScroll: true });
      if (!this.canInput()) return;
      event.preventDefault();
      canvas.setPointerCapture?.(event.pointerId);
      this.pointerEvent(event, true);
    });
    this.listen(canvas, 'pointerup', (event) => {
      if (!this.canInput()) return;
      event.preventDefault();
      this.pointerEvent(event, true);
    });
    this.listen(canvas, 'pointermove', (event) => {
      if (!this.canInput()) return;
      this.pointerEvent(event, event.buttons !== this.buttons);
    });
    this.listen(canvas, 'contextmenu', (event) => event.preventDefault());
    this.listen(canvas, 'wheel', (event) => this.onWheel(event), { passive: false });
  }

  /** @param {MouseEvent} event */
  toRemote(event) {
    return remotePoint(event.clientX, event.clientY, this.canvas.getBoundingClientRect(), this.canvas.width, this.canvas.height);
  }

  /**
   * Sends pointer state: at once for buttons, at most once a frame for moves.
   * @param {PointerEvent} event
   * @param {boolean} immediate
   */
  pointerEvent(event, immediate) {
    this.pointer = this.toRemote(event);
    this.buttons = event.buttons & BUTTON_MASK;
    if (immediate) {
      this.pendingMove = false;
      this.send('input.mouse', { x: this.pointer.x, y: this.pointer.y, buttons: this.buttons });
      return;
    }
    if (this.pendingMove) return;
    this.pendingMove = true;
    requestAnimationFrame(() => {
      if (!this.pendingMove) return;
      this.pendingMove = false;
      this.send('input.mouse', { x: this.pointer.x, y: this.pointer.y, buttons: this.buttons });
    });
  }

  /** @param {WheelEvent} event */
  onWheel(event) {
    if (!this.canInput()) return;
    event.preventDefault();
    const position = this.toRemote(event);
    const delta = wheelDelta(event.deltaY, event.deltaMode);
    if (!delta) return;
    this.send('input.mouse', { x: position.x, y: position.y, buttons: this.buttons, wheel_delta: delta });
  }

  /**
   * @param {KeyboardEvent} event
   * @param {boolean} down
   */
  onKey(event, down) {
    if (isLeaveChord(event, down)) {
      event.preventDefault();
      this.releaseAll();
      this.onLeave();
      return;
    }
    if (!this.canInput()) return;
    event.preventDefault();
    event.stopPropagation();
    const message = keyMessage(event, down);
    if (message?.type === 'input.key') {
      if (down) this.heldKeys.add(message.payload.code);
      else this.heldKeys.delete(message.payload.code);
    }
    if (message) this.send(message.type, message.payload);
  }

  /**
   * Lets go of every key and button held on the remote side.
   * @param {boolean} [send]  false when the socket is gone (nothing to tell)
   */
  releaseAll(send = true) {
    if (send && this.canInput()) {
      for (const code of this.heldKeys) this.send('input.key', { code, down: false });
      if (this.buttons) this.send('input.mouse', { x: this.pointer.x, y: this.pointer.y, buttons: 0 });
    }
    this.heldKeys.clear();
    this.buttons = 0;
  }

  /** Stops listening. */
  destroy() {
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }
}
