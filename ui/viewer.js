// The remote desktop viewer: a canvas fed by the gateway WebSocket
// (`binary_v1` frames, zlib-compressed), keyboard and mouse input, scaling
// and fullscreen, remote resize, latency, grayscale, clipboard, takeover
// and automatic reconnect.

import * as api from './api.js';
import { h, setChildren, errorBox, toast, confirmDialog, uid } from './ui.js';
import { decodeFrame } from './frames.js';
import { go, windowSize } from './app.js';

const PING_INTERVAL_MS = 5_000;
/** A socket whose pong is this late is treated as dropped. */
const PONG_TIMEOUT_MS = 15_000;
const RECONNECT_MAX_DELAY_MS = 30_000;
const COLOR_MODE_KEY = 'rap.viewer.color_mode';

/** Attach blocks handed over by the page that started or resumed a session. */
const handoffs = new Map();

/** Gives the viewer of `sessionId` the attach block just obtained for it. */
export function handOff(sessionId, attach, mode = 'control') {
  handoffs.set(sessionId, { attach, mode });
}

export async function viewerPage(main, { match, params }) {
  const viewer = new Viewer(main, match[1], params.get('mode') === 'shadow' ? 'shadow' : 'control');
  await viewer.start();
  return () => viewer.destroy();
}

const CLOSE_SESSION_ENDED = 4409;
const CLOSE_ATTACH_REFUSED = 4401;

class Viewer {
  constructor(main, sessionId, mode) {
    this.main = main;
    this.sessionId = sessionId;
    this.mode = mode; // 'control' | 'shadow'
    this.role = null; // 'controller' | 'viewer' once attached
    this.socket = null;
    this.generation = 0;
    this.ended = false;
    this.destroyed = false;
    this.takenOver = false;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.pingSentAt = null;
    this.lastPongAt = 0;
    this.colorMode = localStorage.getItem(COLOR_MODE_KEY) === 'grayscale' ? 'grayscale' : 'full_color';
    this.heldKeys = new Set();
    this.buttons = 0;
    this.pointer = { x: 0, y: 0 };
    this.pendingMove = false;
    this.pendingResize = null;
    this.paintChain = Promise.resolve();
    this.frames = 0;
    this.framesThisSecond = 0;
    this.clipboardSequence = Date.now();
    this.clipboardMode = null; // unknown until the resource is read
    this.fileMode = null;
    this.lastError = null;
    this.cleanups = [];
    this.build();
  }

  // ------------------------------------------------------------------ DOM

  build() {
    const button = (label, onclick, attrs = {}) => h('button', { type: 'button', class: 'small secondary', onclick, ...attrs }, label);
    this.title = h('h1', { class: 'viewer-title', text: 'Remote desktop' });
    this.stateText = h('span', { class: 'conn-text', text: 'Connecting…' });
    this.stateBox = h('span', { class: 'conn', id: 'connection-state', dataset: { state: 'connecting' }, role: 'status', 'aria-live': 'polite' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), this.stateText);
    this.latency = h('span', { class: 'latency', id: 'latency', title: 'Round trip to the appliance', text: '— ms' });
    this.fps = h('span', { class: 'fps muted', id: 'fps', text: '' });
    this.viewersBox = h('span', { class: 'viewers', id: 'viewers', hidden: true });
    this.roleBadge = h('span', { class: 'badge badge-viewer', hidden: true, text: 'Read-only' });

    this.fullscreenButton = button('Fullscreen', () => this.toggleFullscreen(), { id: 'fullscreen', 'aria-pressed': 'false' });
    this.resizeButton = button('Resize remote to window', () => this.resizeRemote(), { id: 'resize-remote', title: 'Change the remote desktop’s size to fit this window' });
    this.grayButton = button('Grayscale', () => this.toggleGrayscale(), { id: 'grayscale', 'aria-pressed': String(this.colorMode === 'grayscale') });
    this.pasteButton = button('Paste', () => this.pasteToRemote(), { id: 'paste', title: 'Send this computer’s clipboard to the remote desktop' });
    this.detachButton = button('Detach', () => this.detach(), { id: 'detach', title: 'Leave the session running and come back later' });
    this.terminateButton = button('Terminate', () => this.terminate(), { id: 'terminate', class: 'small danger' });
    this.closeButton = button('Close', () => this.close(), { id: 'close-viewer', title: 'Close the viewer' });

    this.toolbar = h(
      'div',
      { class: 'viewer-bar', role: 'toolbar', 'aria-label': 'Remote desktop controls' },
      this.title,
      this.stateBox,
      this.latency,
      this.fps,
      this.viewersBox,
      this.roleBadge,
      h('span', { class: 'spacer' }),
      h('span', { class: 'tools' }, this.fullscreenButton, this.resizeButton, this.grayButton, this.pasteButton, this.detachButton, this.terminateButton, this.closeButton),
    );
    this.toolbar.addEventListener('keydown', (event) => this.toolbarKeys(event));

    this.notices = h('div', { class: 'viewer-notices', id: 'viewer-notices', 'aria-live': 'assertive' });
    const hintId = uid('hint');
    this.canvas = h('canvas', {
      id: 'remote-canvas',
      tabindex: '0',
      width: 1280,
      height: 800,
      role: 'application',
      'aria-roledescription': 'remote desktop',
      'aria-label': 'Remote desktop',
      'aria-describedby': hintId,
    });
    this.context = this.canvas.getContext('2d', { alpha: false });
    this.stage = h('div', { class: 'viewer-stage', id: 'viewer-stage' }, this.canvas);
    const hint = h('p', { id: hintId, class: 'viewer-hint muted', text: 'Click the desktop to type into it. Ctrl+Alt+Home returns keyboard focus to these controls.' });

    // Clipboard panel: the fallback when the browser will not let us at the clipboard.
    this.clipboardOut = h('textarea', { id: 'clipboard-out', rows: 3, spellcheck: 'false' });
    this.clipboardIn = h('textarea', { id: 'clipboard-in', rows: 3, readonly: true, spellcheck: 'false' });
    this.clipboardNote = h('p', { class: 'muted', id: 'clipboard-policy', text: 'Clipboard policy: checking…' });
    this.clipboardSend = button('Send to remote', () => this.sendClipboard(this.clipboardOut.value), { id: 'clipboard-send' });
    this.clipboardPanel = h(
      'details',
      { class: 'viewer-panel', id: 'clipboard-panel' },
      h('summary', { text: 'Clipboard' }),
      this.clipboardNote,
      h('div', { class: 'field' }, h('label', { for: 'clipboard-out', text: 'Text to send to the remote desktop' }), this.clipboardOut, h('div', { class: 'form-actions' }, this.clipboardSend)),
      h('div', { class: 'field' }, h('label', { for: 'clipboard-in', text: 'Last text copied on the remote desktop' }), this.clipboardIn),
    );

    // File transfer: the backend does not carry files yet.
    this.filePolicy = h('span', { id: 'file-policy', text: 'checking…' });
    this.filePanel = h(
      'details',
      { class: 'viewer-panel', id: 'files-panel' },
      h('summary', { text: 'Files' }),
      h(
        'fieldset',
        { disabled: true, class: 'files' },
        h('legend', { text: 'File transfer' }),
        h('p', { class: 'alert alert-info', text: 'File transfer is not available on this appliance yet. Uploads and downloads will appear here when it is.' }),
        h('p', { class: 'muted' }, 'Policy for this resource: ', this.filePolicy),
        h('div', { class: 'dropzone', 'aria-disabled': 'true', text: 'Drop files here to upload (unavailable)' }),
        h('label', { for: 'file-upload', text: 'Upload a file' }),
        h('input', { type: 'file', id: 'file-upload', disabled: true }),
        h('p', { class: 'muted', text: 'Downloads: none.' }),
      ),
    );

    this.root = h(
      'section',
      { class: 'viewer', id: 'viewer', 'aria-label': 'Remote desktop viewer', dataset: { sessionId: this.sessionId } },
      this.toolbar,
      this.notices,
      this.stage,
      hint,
      h('div', { class: 'viewer-panels' }, this.clipboardPanel, this.filePanel),
    );
    // A handle for tests and debugging from the console.
    this.root.rapViewer = this;
    setChildren(this.main, this.root);
    this.bindInput();
    this.updateButtons();

    const observer = new ResizeObserver(() => this.fit());
    observer.observe(this.stage);
    this.cleanups.push(() => observer.disconnect());
    const fullscreen = () => this.onFullscreenChange();
    document.addEventListener('fullscreenchange', fullscreen);
    this.cleanups.push(() => document.removeEventListener('fullscreenchange', fullscreen));
    this.fpsTimer = setInterval(() => {
      this.fps.textContent = this.socket ? `${this.framesThisSecond} fps` : '';
      this.framesThisSecond = 0;
    }, 1_000);
    this.cleanups.push(() => clearInterval(this.fpsTimer));
  }

  setState(state, text) {
    this.stateBox.dataset.state = state;
    this.stateText.textContent = text;
    this.root.dataset.state = state;
  }

  /** Shows a notice: an `event` object, an ApiError, or plain text. */
  notice(what, { kind = 'error', key, actions = [], id } = {}) {
    let box;
    if (typeof what === 'string') {
      box = h('p', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status', dataset: { messageKey: key ?? '' } }, h('span', { text: what }));
    } else {
      box = errorBox(what);
      if (kind !== 'error') box.className = `alert alert-${kind}`;
    }
    if (id) {
      box.id = id;
      document.getElementById(id)?.remove();
    }
    const dismiss = h('button', { type: 'button', class: 'small link', 'aria-label': 'Dismiss', text: '×', onclick: () => box.remove() });
    box.append(' ', ...actions, dismiss);
    this.notices.prepend(box);
    while (this.notices.childElementCount > 4) this.notices.lastElementChild.remove();
    return box;
  }

  updateButtons() {
    const controlling = this.role === 'controller' && !this.ended;
    const connected = Boolean(this.socket) && this.role !== null && !this.ended;
    this.resizeButton.disabled = !controlling;
    this.pasteButton.disabled = !controlling || this.clipboardMode === 'disabled' || this.clipboardMode === 'server_to_client';
    this.clipboardSend.disabled = this.pasteButton.disabled;
    this.detachButton.disabled = !controlling;
    this.terminateButton.disabled = this.ended || this.mode === 'shadow';
    this.grayButton.disabled = !connected;
    this.roleBadge.hidden = this.role !== 'viewer';
    // A shadow viewer never controls: leave out what it cannot use.
    for (const control of [this.resizeButton, this.pasteButton, this.detachButton, this.terminateButton]) control.hidden = this.mode === 'shadow';
  }

  // -------------------------------------------------------------- startup

  async start() {
    this.loadDetails();
    const handed = handoffs.get(this.sessionId);
    handoffs.delete(this.sessionId);
    let attach = handed?.attach;
    if (!attach) {
      try {
        attach = await this.newAttach();
      } catch (error) {
        this.attachFailed(error);
        return;
      }
    }
    this.connect(attach);
  }

  /** Reads the session and its resource for the title and the policies. */
  async loadDetails() {
    try {
      const session = await api.get(`/sessions/${this.sessionId}`);
      const resource = await api.get(`/resources/${session.resource_id}`).catch(() => null);
      if (this.destroyed) return;
      if (resource) {
        this.title.textContent = resource.name;
        document.title = `${resource.name} · RAP Appliance`;
        this.clipboardMode = resource.policy?.clipboard_mode ?? null;
        this.fileMode = resource.policy?.file_transfer_mode ?? null;
      }
      const describe = {
        disabled: 'disabled',
        client_to_server: 'from this computer to the remote desktop only',
        server_to_client: 'from the remote desktop to this computer only',
        bidirectional: 'both directions',
      };
      this.clipboardNote.textContent = this.clipboardMode ? `Clipboard policy: ${describe[this.clipboardMode] ?? this.clipboardMode}.` : 'Clipboard policy: unknown; the appliance enforces it.';
      this.filePolicy.textContent = this.fileMode ? describe[this.fileMode] ?? this.fileMode : 'unknown';
      this.updateButtons();
    } catch {
      this.clipboardNote.textContent = 'Clipboard policy: unknown; the appliance enforces it.';
    }
  }

  /** A fresh attach block: reattach (controller) or shadow (viewer). */
  async newAttach(kind = this.mode === 'shadow' ? 'shadow' : 'attach') {
    const answer = await api.post(`/sessions/${this.sessionId}/${kind}`);
    return answer.attach;
  }

  attachFailed(error) {
    this.socket = null;
    if (error.status === 404 || (error.code === 'invalid_session_state' && ['terminated', 'failed'].includes(error.details?.state))) {
      this.end(false);
      this.notice(error, { id: 'session-ended', actions: [this.homeLink()] });
      return;
    }
    if (error.status === 409 && this.mode !== 'shadow') {
      // Someone else controls it: offer the takeover.
      this.setState('idle', 'Not connected');
      this.notice(error, { actions: [h('button', { type: 'button', class: 'small primary', text: 'Take over', onclick: () => this.takeBack() })] });
      this.updateButtons();
      return;
    }
    this.setState('error', 'Not connected');
    this.notice(error, { actions: [h('button', { type: 'button', class: 'small primary', text: 'Try again', onclick: () => this.reconnectNow() })] });
    this.updateButtons();
  }

  homeLink() {
    return h('a', { href: '#/', class: 'small', text: 'Back to my desktops' });
  }

  // ------------------------------------------------------------- socket

  connect(attach) {
    if (this.destroyed) return;
    const generation = ++this.generation;
    const url = new URL(attach.gateway_url, location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.setState('connecting', this.attempt ? 'Reconnecting…' : 'Connecting…');
    let socket;
    try {
      socket = new WebSocket(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.closingEvent = null;
    const current = () => generation === this.generation && !this.destroyed;
    socket.addEventListener('open', () => {
      if (!current()) return;
      socket.send(
        JSON.stringify({
          type: 'attach',
          payload: { attach_token: attach.attach_token, render_transport: 'binary_v1', color_mode: this.colorMode, compression: 'zlib' },
        }),
      );
    });
    socket.addEventListener('message', (event) => {
      if (!current()) return;
      if (typeof event.data === 'string') {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        this.onMessage(message);
      } else {
        this.onFrame(event.data);
      }
    });
    socket.addEventListener('close', (event) => {
      if (!current()) return;
      this.onClose(event.code);
    });
  }

  send(type, payload) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(payload === undefined ? { type } : { type, payload }));
    return true;
  }

  /** Closes the current socket without reacting to its close. */
  dropSocket() {
    const socket = this.socket;
    this.generation += 1;
    this.socket = null;
    this.stopPing();
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'client_closing');
  }

  onMessage(message) {
    const { type, payload = {}, event } = message;
    switch (type) {
      case 'session.attached':
        this.role = payload.role ?? (this.mode === 'shadow' ? 'viewer' : 'controller');
        this.attempt = 0;
        this.colorMode = payload.color_mode ?? this.colorMode;
        this.grayButton.setAttribute('aria-pressed', String(this.colorMode === 'grayscale'));
        this.setCanvasSize(payload.width, payload.height);
        if (this.role === 'controller') {
          this.takenOver = false;
          document.getElementById('taken-over')?.remove();
          this.setState('connected', 'Connected');
        } else {
          this.setState('viewing', this.takenOver ? 'Taken over' : 'Watching');
        }
        this.startPing();
        this.updateButtons();
        if (this.role === 'controller' && (document.activeElement === document.body || this.main.contains(document.activeElement))) this.canvas.focus({ preventScroll: true });
        break;
      case 'session.state':
        if (payload.state === 'terminated' || payload.state === 'failed') {
          if (event) this.notice(event, { kind: payload.state === 'failed' ? 'error' : 'info', id: 'session-ended', actions: [this.homeLink()] });
          this.end(!event);
        } else if (payload.state === 'detached' && this.role === 'controller') {
          this.role = 'viewer';
          this.setState('viewing', 'Detached');
          this.updateButtons();
        }
        break;
      case 'session.viewers':
        this.viewersBox.hidden = !payload.count;
        this.viewersBox.textContent = `${payload.count} watching`;
        this.viewersBox.title = payload.count ? `${payload.count} read-only viewer(s) are watching this session` : '';
        break;
      case 'session.taken_over':
        this.takenOver = true;
        this.releaseAll();
        this.role = 'viewer';
        this.setState('viewing', 'Taken over');
        this.updateButtons();
        this.notice(event ?? 'Another device took over this session.', {
          kind: 'warn',
          id: 'taken-over',
          actions: [h('button', { type: 'button', class: 'small primary', id: 'take-back', text: 'Take back control', onclick: () => this.takeBack() })],
        });
        break;
      case 'clipboard.text':
        this.onRemoteClipboard(payload.text ?? '');
        break;
      case 'transport.closed':
        this.closingEvent = event ?? null;
        if (['session_ended', 'session_failed'].includes(payload.reason)) this.end(false);
        break;
      case 'pong':
        if (this.pingSentAt !== null) {
          const rtt = Math.round(performance.now() - this.pingSentAt);
          this.latency.textContent = `${rtt} ms`;
          this.latency.dataset.ms = String(rtt);
          this.pingSentAt = null;
        }
        this.lastPongAt = performance.now();
        break;
      case 'error':
        this.onError(event ?? { code: payload.code, message_key: `error.${payload.code}`, fallback_message: `Error: ${payload.code}` });
        break;
      default:
        break;
    }
  }

  onError(event) {
    // The same refusal again and again (a burst of input) shows once.
    const signature = `${event.code}:${event.details?.reason ?? ''}`;
    if (this.lastError === signature && document.querySelector(`#viewer-notices [data-code="${event.code}"]`)) return;
    this.lastError = signature;
    this.notice(event);
  }

  onClose(code) {
    this.socket = null;
    this.stopPing();
    this.releaseAll(false);
    this.role = null;
    this.updateButtons();
    if (this.destroyed) return;
    if (this.closingEvent && !this.ended) this.notice(this.closingEvent, { kind: 'warn' });
    if (code === CLOSE_SESSION_ENDED || this.ended) {
      this.end(!this.closingEvent);
      return;
    }
    if (code === CLOSE_ATTACH_REFUSED) this.attempt = Math.max(this.attempt, 1);
    this.scheduleReconnect();
  }

  /** The session is over: no more reconnects. `say` adds a generic notice. */
  end(say = true) {
    if (!this.ended) {
      this.ended = true;
      if (say && !document.getElementById('session-ended')) {
        this.notice('The session has ended.', { kind: 'info', id: 'session-ended', key: 'event.session_ended', actions: [this.homeLink()] });
      }
    }
    clearTimeout(this.reconnectTimer);
    clearInterval(this.countdownTimer);
    this.setState('ended', 'Session ended');
    this.dropSocket();
    this.role = null;
    this.updateButtons();
  }

  scheduleReconnect() {
    if (this.ended || this.destroyed) return;
    clearTimeout(this.reconnectTimer);
    const base = Math.min(RECONNECT_MAX_DELAY_MS, 500 * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    const until = Date.now() + delay;
    const tick = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      this.setState('reconnecting', `Connection lost; reconnecting in ${left} s…`);
    };
    tick();
    clearInterval(this.countdownTimer);
    this.countdownTimer = setInterval(tick, 1_000);
    this.reconnectTimer = setTimeout(() => {
      clearInterval(this.countdownTimer);
      this.reconnectNow();
    }, delay);
  }

  async reconnectNow() {
    clearTimeout(this.reconnectTimer);
    clearInterval(this.countdownTimer);
    if (this.ended || this.destroyed) return;
    this.setState('connecting', 'Reconnecting…');
    let attach;
    try {
      attach = await this.newAttach(this.takenOver && this.mode !== 'shadow' ? 'attach' : undefined);
    } catch (error) {
      if (this.destroyed) return;
      if (error.status === 0 || error.status >= 500) {
        this.scheduleReconnect();
        return;
      }
      if (error.status === 409 && this.takenOver) {
        // Still someone else's: keep the takeover notice, do not spin.
        this.setState('idle', 'Not connected (taken over)');
        return;
      }
      this.attachFailed(error);
      return;
    }
    this.connect(attach);
  }

  /** Takes control back (or over) and reconnects with the new token. */
  async takeBack() {
    try {
      const answer = await api.post(`/sessions/${this.sessionId}/takeover`);
      this.dropSocket();
      this.mode = 'control';
      this.takenOver = false;
      document.getElementById('taken-over')?.remove();
      this.connect(answer.attach);
    } catch (error) {
      this.notice(error);
    }
  }

  startPing() {
    this.stopPing();
    this.lastPongAt = performance.now();
    const ping = () => {
      if (this.pingSentAt !== null && performance.now() - this.pingSentAt > PONG_TIMEOUT_MS) {
        // The socket went quiet without closing: treat it as dropped.
        this.pingSentAt = null;
        this.dropSocket();
        this.onClose(1006);
        return;
      }
      if (this.pingSentAt === null && this.send('ping')) this.pingSentAt = performance.now();
    };
    ping();
    this.pingTimer = setInterval(ping, PING_INTERVAL_MS);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.pingSentAt = null;
  }

  // -------------------------------------------------------------- frames

  onFrame(buffer) {
    const decoded = decodeFrame(buffer);
    this.paintChain = this.paintChain
      .then(() => decoded)
      .then((frame) => this.paint(frame))
      .catch((error) => {
        if (this.lastError === 'frame') return;
        this.lastError = 'frame';
        this.notice(`A screen update could not be drawn: ${error.message}`, { key: 'error.frame_decode' });
      });
  }

  paint(frame) {
    if (this.destroyed) return;
    const { x, y, width, height } = frame;
    if (this.pendingResize && x === 0 && y === 0 && width === this.pendingResize.width && height === this.pendingResize.height) {
      this.pendingResize = null;
      this.setCanvasSize(width, height);
    } else if (x + width > this.canvas.width || y + height > this.canvas.height) {
      this.setCanvasSize(Math.max(this.canvas.width, x + width), Math.max(this.canvas.height, y + height));
    }
    this.context.putImageData(new ImageData(frame.rgba, width, height), x, y);
    this.frames += 1;
    this.framesThisSecond += frame.last ? 1 : 0;
    this.canvas.dataset.frames = String(this.frames);
  }

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
    const { clientWidth, clientHeight } = this.stage;
    if (!clientWidth || !clientHeight) return;
    const scale = Math.min(clientWidth / this.canvas.width, clientHeight / this.canvas.height);
    this.canvas.style.width = `${Math.floor(this.canvas.width * scale)}px`;
    this.canvas.style.height = `${Math.floor(this.canvas.height * scale)}px`;
  }

  // --------------------------------------------------------------- input

  bindInput() {
    const canvas = this.canvas;
    const on = (target, type, handler, options) => {
      target.addEventListener(type, handler, options);
      this.cleanups.push(() => target.removeEventListener(type, handler, options));
    };
    on(canvas, 'keydown', (event) => this.onKey(event, true));
    on(canvas, 'keyup', (event) => this.onKey(event, false));
    on(canvas, 'blur', () => this.releaseAll());
    on(window, 'blur', () => this.releaseAll());
    on(document, 'visibilitychange', () => {
      if (document.hidden) this.releaseAll();
    });
    on(canvas, 'pointerdown', (event) => {
      canvas.focus({ preventScroll: true });
      if (!this.canInput()) return;
      event.preventDefault();
      canvas.setPointerCapture?.(event.pointerId);
      this.pointerEvent(event, true);
    });
    on(canvas, 'pointerup', (event) => {
      if (!this.canInput()) return;
      event.preventDefault();
      this.pointerEvent(event, true);
    });
    on(canvas, 'pointermove', (event) => {
      if (!this.canInput()) return;
      this.pointerEvent(event, event.buttons !== this.buttons);
    });
    on(canvas, 'contextmenu', (event) => event.preventDefault());
    on(
      canvas,
      'wheel',
      (event) => {
        if (!this.canInput()) return;
        event.preventDefault();
        const position = this.toRemote(event);
        const scale = event.deltaMode === 1 ? 40 : event.deltaMode === 2 ? 800 : 1;
        // Browsers count down as positive; one notch is about 100 px, sent as 120 units.
        const delta = Math.max(-32768, Math.min(32767, Math.round(event.deltaY * scale * 1.2)));
        if (!delta) return;
        this.send('input.mouse', { x: position.x, y: position.y, buttons: this.buttons, wheel_delta: delta });
      },
      { passive: false },
    );
  }

  canInput() {
    return this.role === 'controller' && !this.ended && this.socket?.readyState === WebSocket.OPEN;
  }

  toRemote(event) {
    const rect = this.canvas.getBoundingClientRect();
    const clamp = (value, high) => Math.max(0, Math.min(high - 1, value));
    return {
      x: clamp(Math.floor(((event.clientX - rect.left) * this.canvas.width) / rect.width), this.canvas.width),
      y: clamp(Math.floor(((event.clientY - rect.top) * this.canvas.height) / rect.height), this.canvas.height),
    };
  }

  /** Sends pointer state: at once for buttons, at most once a frame for moves. */
  pointerEvent(event, immediate) {
    this.pointer = this.toRemote(event);
    this.buttons = event.buttons & 0x1f;
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

  onKey(event, down) {
    if (down && event.ctrlKey && event.altKey && event.code === 'Home') {
      // The way out of the canvas for keyboard users.
      event.preventDefault();
      this.releaseAll();
      this.fullscreenButton.focus();
      return;
    }
    if (!this.canInput()) return;
    event.preventDefault();
    event.stopPropagation();
    if (event.code) {
      if (down) this.heldKeys.add(event.code);
      else this.heldKeys.delete(event.code);
      this.send('input.key', { code: event.code, down });
    } else if (down && event.key && event.key.length === 1) {
      // No physical code (some virtual keyboards): send the character.
      this.send('input.unicode', { text: event.key });
    }
  }

  /** Lets go of every key and button held on the remote side. */
  releaseAll(send = true) {
    if (send && this.canInput()) {
      for (const code of this.heldKeys) this.send('input.key', { code, down: false });
      if (this.buttons) this.send('input.mouse', { x: this.pointer.x, y: this.pointer.y, buttons: 0 });
    }
    this.heldKeys.clear();
    this.buttons = 0;
  }

  toolbarKeys(event) {
    // Arrow keys move between the toolbar's buttons.
    if (event.key !== 'ArrowRight' && event.key !== 'ArrowLeft') return;
    const buttons = [...this.toolbar.querySelectorAll('button:not([disabled])')];
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    event.preventDefault();
    const next = buttons[(index + (event.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length];
    next.focus();
  }

  // ------------------------------------------------------------- actions

  async toggleFullscreen() {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await this.root.requestFullscreen();
    } catch (error) {
      this.notice(`Fullscreen is not available: ${error.message}`, { kind: 'warn', key: 'error.fullscreen_unavailable' });
    }
  }

  onFullscreenChange() {
    const active = document.fullscreenElement === this.root;
    this.fullscreenButton.setAttribute('aria-pressed', String(active));
    this.fullscreenButton.textContent = active ? 'Exit fullscreen' : 'Fullscreen';
    this.root.classList.toggle('is-fullscreen', active);
    // In fullscreen, Chromium lets a page keep system shortcuts (Escape, Alt+Tab…).
    if (active) navigator.keyboard?.lock?.().catch(() => {});
    else navigator.keyboard?.unlock?.();
    this.fit();
    if (active) this.canvas.focus({ preventScroll: true });
  }

  resizeRemote() {
    const even = (value, low, high) => Math.max(low, Math.min(high, Math.floor(value / 2) * 2));
    const width = even(this.stage.clientWidth || windowSize().width, 64, 7680);
    const height = even(this.stage.clientHeight || windowSize().height, 64, 4320);
    // The frame that answers is the whole screen at the new size; a remote
    // side that does not resize never sends it, so forget it after a while.
    this.pendingResize = { width, height };
    clearTimeout(this.pendingResizeTimer);
    this.pendingResizeTimer = setTimeout(() => {
      this.pendingResize = null;
    }, 5_000);
    if (this.send('display.resize', { width, height })) toast(`Asked the remote desktop for ${width}×${height}.`);
  }

  toggleGrayscale() {
    this.colorMode = this.colorMode === 'grayscale' ? 'full_color' : 'grayscale';
    localStorage.setItem(COLOR_MODE_KEY, this.colorMode);
    this.grayButton.setAttribute('aria-pressed', String(this.colorMode === 'grayscale'));
    this.send('color_mode', { color_mode: this.colorMode });
  }

  async pasteToRemote() {
    if (navigator.clipboard?.readText) {
      try {
        const text = await navigator.clipboard.readText();
        this.sendClipboard(text);
        return;
      } catch {
        /* not permitted: fall back to the text area */
      }
    }
    this.clipboardPanel.open = true;
    this.clipboardOut.focus();
    this.notice('Paste the text into “Text to send” and press “Send to remote”.', { kind: 'info', id: 'paste-hint', key: 'event.clipboard_manual' });
  }

  sendClipboard(text) {
    if (!text) return;
    this.clipboardSequence += 1;
    if (this.send('clipboard.text', { text, sequence_id: this.clipboardSequence })) toast('Clipboard sent to the remote desktop.');
  }

  async onRemoteClipboard(text) {
    this.clipboardIn.value = text;
    this.clipboardIn.dataset.updated = new Date().toISOString();
    if (navigator.clipboard?.writeText) {
      try {
        await navigator.clipboard.writeText(text);
        toast('Copied the remote clipboard to this computer.');
        return;
      } catch {
        /* no permission: leave it in the text area */
      }
    }
    this.clipboardPanel.open = true;
    toast('The remote desktop copied text: select it in the Clipboard panel to copy it.', 'info');
  }

  async detach() {
    try {
      this.releaseAll();
      await api.post(`/sessions/${this.sessionId}/detach`);
      this.ended = true; // nothing to reconnect to from here
      this.dropSocket();
      toast('Session detached; resume it from My desktops.');
      go('/');
    } catch (error) {
      this.notice(error);
    }
  }

  async terminate() {
    if (!(await confirmDialog('Terminate this session? The remote desktop will be closed.', 'Terminate'))) return;
    try {
      await api.post(`/sessions/${this.sessionId}/terminate`);
      toast('Session terminated.');
      this.end();
      go('/');
    } catch (error) {
      this.notice(error);
    }
  }

  close() {
    go(this.mode === 'shadow' ? '/admin/sessions' : '/');
  }

  destroy() {
    this.destroyed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.countdownTimer);
    clearTimeout(this.pendingResizeTimer);
    this.releaseAll();
    this.dropSocket();
    if (document.fullscreenElement === this.root) document.exitFullscreen().catch(() => {});
    for (const cleanup of this.cleanups) cleanup();
  }
}
