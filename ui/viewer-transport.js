// @ts-check
// The viewer's connection to the gateway WebSocket: the attach handshake
// (`attach_token`, `binary_v1` frames, zlib, H.264 when the screen can
// decode it), message dispatch (JSON envelopes to `onMessage`, binary
// frames to `onFrame`), the heartbeat (`ping` every 5 s gives the latency;
// a pong later than 15 s counts as a dropped socket), and reconnects with
// a fresh attach block and exponential backoff (0.5 s doubling to 30 s,
// ±25 % jitter). Whether a close reconnects at all is decided in
// viewer-close.js.

import { reconnectingText, reattachDecision } from './viewer-close.js';

export const PING_INTERVAL_MS = 5_000;
/** A socket whose pong is this late is treated as dropped. */
export const PONG_TIMEOUT_MS = 15_000;
export const RECONNECT_BASE_DELAY_MS = 500;
export const RECONNECT_MAX_DELAY_MS = 30_000;

/** Messages that say why the socket is about to close (kept for the close). */
const EXPLAINS_CLOSE = new Set(['transport.closed', 'session.access_revoked', 'session.taken_over', 'error']);

/**
 * A live-plane envelope from the server.
 * @typedef {object} Envelope
 * @property {string} type
 * @property {Record<string, any>} [payload]
 * @property {import('./transfers.js').LiveEvent} [event]
 */

/** @typedef {import('./sessions.js').AttachBlock} AttachBlock */
/** @typedef {import('./viewer-close.js').ReconnectWhy} ReconnectWhy */

/**
 * How long to wait before reconnect attempt number `attempt` (0 first):
 * 0.5 s doubling to 30 s, each spread by ±25 % so many viewers dropped at
 * once do not come back at once.
 * @param {number} attempt
 * @param {() => number} [random]  in [0, 1)
 */
export function reconnectDelay(attempt, random = Math.random) {
  const base = Math.min(RECONNECT_MAX_DELAY_MS, RECONNECT_BASE_DELAY_MS * 2 ** attempt);
  return Math.round(base * (0.75 + random() * 0.5));
}

/**
 * The WebSocket URL of an attach block's `gateway_url` (which may be
 * relative to the page): ws: beside http:, wss: beside https:.
 * @param {string} gatewayUrl
 * @param {string} base  the page's address
 */
export function socketUrl(gatewayUrl, base) {
  const url = new URL(gatewayUrl, base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

/**
 * The first message on a new socket; `codecs` (`['h264']`: the host's
 * H.264 stream as `binary_v1` encodings 4 and 5) only when there are any.
 * `render_acks`: the viewer acknowledges each update it has painted, so
 * the gateway keeps at most four in flight and a slow link gets fewer,
 * fresher updates instead of a backlog.
 * @param {string} attachToken
 * @param {string} colorMode
 * @param {string[]} [codecs]
 */
export function attachEnvelope(attachToken, colorMode, codecs = []) {
  const payload = { attach_token: attachToken, render_transport: 'binary_v1', color_mode: colorMode, compression: 'zlib', render_acks: true };
  return JSON.stringify({ type: 'attach', payload: codecs.length ? { ...payload, codecs } : payload });
}

/**
 * A client message: `{type}` alone when there is no payload.
 * @param {string} type
 * @param {object} [payload]
 */
export function encodeEnvelope(type, payload) {
  return JSON.stringify(payload === undefined ? { type } : { type, payload });
}

/**
 * A server text message as an envelope; null for one that is not JSON.
 * @param {string} text
 * @returns {Envelope | null}
 */
export function parseEnvelope(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * @typedef {object} TransportHooks
 * @property {() => Promise<AttachBlock>} reattach  a fresh attach block for a reconnect
 * @property {(error: any) => void} attachFailed    a reconnect's attach request was refused
 * @property {() => boolean} ended                  the session is over: no reconnects
 * @property {() => string} colorMode               the colour mode to attach with
 * @property {() => string[]} codecs                 the codecs to attach with (none: pixels only)
 * @property {(state: string, text: string) => void} onState  connecting, reconnecting (with the countdown)
 * @property {(message: Envelope) => void} onMessage
 * @property {(buffer: ArrayBuffer) => void} onFrame
 * @property {(code: number, last: Envelope | null) => void} onClose
 *   the socket closed or went quiet; `last` is the message that explained it, if one came
 * @property {(ms: number) => void} onLatency  a ping's round trip
 */

export class GatewayTransport {
  /** @param {TransportHooks} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    /** @type {WebSocket | null} */
    this.socket = null;
    // Events of a socket from an older generation are ignored.
    this.generation = 0;
    /** Reconnects since the last `session.attached` (the backoff exponent). */
    this.attempt = 0;
    this.destroyed = false;
    /** @type {Envelope | null} the last message that explains a close */
    this.lastExplanation = null;
    this.reconnectTimer = undefined;
    this.countdownTimer = undefined;
    this.pingTimer = undefined;
    /** @type {number | null} */
    this.pingSentAt = null;
    this.lastPongAt = 0;
  }

  /** Whether messages can be sent now. */
  get open() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /**
   * Opens a socket and attaches with `attach.attach_token`.
   * @param {AttachBlock} attach
   */
  connect(attach) {
    if (this.destroyed) return;
    const generation = ++this.generation;
    const url = socketUrl(attach.gateway_url, location.href);
    this.hooks.onState('connecting', this.attempt ? 'Reconnecting…' : 'Connecting…');
    let socket;
    try {
      socket = new WebSocket(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.lastExplanation = null;
    const current = () => generation === this.generation && !this.destroyed;
    socket.addEventListener('open', () => {
      if (!current()) return;
      socket.send(attachEnvelope(attach.attach_token, this.hooks.colorMode(), this.hooks.codecs()));
    });
    socket.addEventListener('message', (event) => {
      if (!current()) return;
      if (typeof event.data === 'string') {
        const message = parseEnvelope(event.data);
        if (message) this.dispatch(message);
      } else {
        this.hooks.onFrame(event.data);
      }
    });
    socket.addEventListener('close', (event) => {
      if (!current()) return;
      this.socket = null;
      this.stopHeartbeat();
      this.hooks.onClose(event.code, this.lastExplanation);
    });
  }

  /**
   * Handles what belongs to the connection itself; the rest goes on.
   * @param {Envelope} message
   */
  dispatch(message) {
    if (message.type === 'pong') {
      this.onPong();
      return;
    }
    // Why the gateway is about to close this socket (used when it does).
    if (EXPLAINS_CLOSE.has(message.type)) this.lastExplanation = message;
    this.hooks.onMessage(message);
  }

  /**
   * Sends a message; false when there is no open socket.
   * @param {string} type
   * @param {object} [payload]
   */
  send(type, payload) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(encodeEnvelope(type, payload));
    return true;
  }

  /** Closes the current socket without reacting to its close. */
  drop() {
    const socket = this.socket;
    this.generation += 1;
    this.socket = null;
    this.stopHeartbeat();
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'client_closing');
  }

  /**
   * Closes the socket as a drop would: the viewer reconnects as after any
   * drop (a fresh attach block, the codecs of now).
   */
  restart() {
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000, 'client_closing');
  }

  /** Forgets the socket without closing it (an attach was refused: it is not ours to use). */
  forget() {
    this.socket = null;
  }

  /** `session.attached`: the connection works; backoff starts over, the heartbeat starts. */
  attached() {
    this.attempt = 0;
    this.startHeartbeat();
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.lastPongAt = performance.now();
    const ping = () => {
      if (this.pingSentAt !== null && performance.now() - this.pingSentAt > PONG_TIMEOUT_MS) {
        // The socket went quiet without closing: treat it as dropped.
        this.pingSentAt = null;
        this.drop();
        this.hooks.onClose(1006, this.lastExplanation);
        return;
      }
      if (this.pingSentAt === null && this.send('ping')) this.pingSentAt = performance.now();
    };
    ping();
    this.pingTimer = setInterval(ping, PING_INTERVAL_MS);
  }

  stopHeartbeat() {
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    this.pingSentAt = null;
  }

  onPong() {
    if (this.pingSentAt !== null) {
      const rtt = Math.round(performance.now() - this.pingSentAt);
      this.pingSentAt = null;
      this.hooks.onLatency(rtt);
    }
    this.lastPongAt = performance.now();
  }

  /**
   * After a close that reconnects: at the backoff step `minAttempt` at the
   * earliest (a refused token, a rate limit), saying why.
   * @param {number} minAttempt
   * @param {ReconnectWhy} why
   */
  reconnectAfterClose(minAttempt, why) {
    this.attempt = Math.max(this.attempt, minAttempt);
    this.scheduleReconnect(why);
  }

  /**
   * Reconnects after the backoff (and not before `minDelayMs`), counting
   * the seconds down in the state.
   * @param {ReconnectWhy} [why]
   * @param {number} [minDelayMs]
   */
  scheduleReconnect(why = 'lost', minDelayMs = 0) {
    if (this.hooks.ended() || this.destroyed) return;
    clearTimeout(this.reconnectTimer);
    const delay = Math.max(minDelayMs, reconnectDelay(this.attempt));
    this.attempt += 1;
    const until = Date.now() + delay;
    const tick = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      this.hooks.onState('reconnecting', reconnectingText(why, left));
    };
    tick();
    clearInterval(this.countdownTimer);
    this.countdownTimer = setInterval(tick, 1_000);
    this.reconnectTimer = setTimeout(() => {
      clearInterval(this.countdownTimer);
      this.reconnectNow();
    }, delay);
  }

  /** Reconnects now with a fresh attach block; unreachable appliances are retried. */
  async reconnectNow() {
    this.cancelReconnect();
    if (this.hooks.ended() || this.destroyed) return;
    this.hooks.onState('connecting', 'Reconnecting…');
    let attach;
    try {
      attach = await this.hooks.reattach();
    } catch (error) {
      if (this.destroyed) return;
      const next = reattachDecision(error);
      if (next.action === 'retry') this.scheduleReconnect(next.why, next.minDelayMs);
      else this.hooks.attachFailed(error);
      return;
    }
    this.connect(attach);
  }

  cancelReconnect() {
    clearTimeout(this.reconnectTimer);
    clearInterval(this.countdownTimer);
  }

  /** For good: no more sockets, no more reconnects. */
  destroy() {
    this.destroyed = true;
    this.cancelReconnect();
    this.drop();
  }
}
