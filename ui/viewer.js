// The remote desktop viewer: a canvas fed by the gateway WebSocket
// (`binary_v1` frames, zlib-compressed), keyboard and mouse input, scaling
// and fullscreen, remote resize, latency, grayscale, clipboard, file
// transfer, takeover and automatic reconnect.

import * as api from './api.js';
import { h, setChildren, errorBox, toast, confirmDialog, uid, formatTime } from './ui.js';
import { FramePipeline } from './frame-pipeline.js';
import { go, windowSize } from './app.js';

const PING_INTERVAL_MS = 5_000;
/** A socket whose pong is this late is treated as dropped. */
const PONG_TIMEOUT_MS = 15_000;
const RECONNECT_MAX_DELAY_MS = 30_000;
const COLOR_MODE_KEY = 'rap.viewer.color_mode';
/** Largest file either way (the appliance checks it too). */
const MAX_FILE_BYTES = 25 * 1024 * 1024;
/** Bytes per `file_upload.chunk` (the most the appliance takes). */
const UPLOAD_CHUNK_BYTES = 256 * 1024;

/** Clipboard and file transfer policies in words. */
const POLICY_WORDS = {
  disabled: 'disabled',
  client_to_server: 'from this computer to the remote desktop only',
  server_to_client: 'from the remote desktop to this computer only',
  bidirectional: 'both directions',
};
const UPLOAD_MODES = ['client_to_server', 'bidirectional'];
const DOWNLOAD_MODES = ['server_to_client', 'bidirectional'];

/** A byte count for people: 512 B, 3.4 KiB, 12.0 MiB. */
function humanSize(bytes) {
  const value = Number(bytes) || 0;
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  if (value < 1024 ** 3) return `${(value / 1024 ** 2).toFixed(1)} MiB`;
  return `${(value / 1024 ** 3).toFixed(1)} GiB`;
}

/** A local refusal shaped like a live-plane `event`. */
const localEvent = (code, fallback_message) => ({ code, message_key: `event.${code}`, fallback_message });

/** Base64 of a Blob (a file slice). */
function blobToBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).slice(String(reader.result).indexOf(',') + 1));
    reader.onerror = () => reject(reader.error ?? new Error('The file could not be read.'));
    reader.readAsDataURL(blob);
  });
}

function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/** A UUID v4 for a transfer (`crypto.randomUUID` needs a secure context). */
function newTransferId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

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
    // Frames are decoded off the main thread and painted here, in order.
    this.pipeline = new FramePipeline({
      paint: (frame) => this.paint(frame),
      fail: (error) => this.frameFailed(error),
      // Re-sending the colour mode makes the gateway send the whole screen.
      resync: () => this.send('color_mode', { color_mode: this.colorMode }),
    });
    this.frames = 0;
    this.framesThisSecond = 0;
    this.clipboardSequence = Date.now();
    this.clipboardMode = null; // unknown until the resource is read
    this.fileMode = null;
    this.policyFromSocket = false; // session.attached said: the resource's answer is older
    this.transfers = new Map(); // transfer id → upload or download (see uploadFiles, startDownload)
    this.uploadQueue = [];
    this.offered = null; // the ToClient folder's files, as last offered
    this.objectUrls = [];
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

    // Files (PROTOCOL.md "Files"): uploads land in the session's drive
    // (RAPXfer; session.attached names it), downloads come from its ToClient folder.
    this.filePolicy = h('span', { id: 'file-policy', text: 'checking…' });
    this.fileBadge = h('span', { class: 'badge badge-viewer', id: 'file-badge', hidden: true });
    this.fileInput = h('input', {
      type: 'file',
      id: 'file-upload',
      multiple: true,
      disabled: true,
      'aria-describedby': 'file-upload-note file-where',
      onchange: () => {
        const files = [...this.fileInput.files];
        this.fileInput.value = '';
        this.uploadFiles(files);
      },
    });
    this.fileUploadNote = h('p', { id: 'file-upload-note', class: 'alert alert-info file-note', hidden: true });
    this.dropzone = h(
      'div',
      { class: 'dropzone', id: 'file-dropzone', 'aria-disabled': 'true' },
      h('p', { class: 'dropzone-text', text: 'Drop files here to send them to the remote desktop, or' }),
      h('label', { for: 'file-upload', class: 'dropzone-label', text: 'Choose files to upload' }),
      this.fileInput,
    );
    this.fileTransfers = h('ul', { class: 'transfers', id: 'file-transfers', 'aria-label': 'File transfers' });
    this.fileTransfersEmpty = h('p', { class: 'empty', text: 'No transfers yet.' });
    this.fileDownloads = h('ul', { class: 'offered', id: 'file-downloads', 'aria-label': 'Files offered by the remote desktop' });
    this.fileDownloadNote = h('p', { id: 'file-download-note', class: 'alert alert-info file-note', hidden: true });
    this.fileRefresh = button('Check again', () => this.send('file_download.list'), { id: 'file-refresh', title: 'Ask the remote desktop for its ToClient folder now' });
    this.fileStatus = h('p', { class: 'visually-hidden', id: 'file-status', role: 'status', 'aria-live': 'polite' });
    this.filePanel = h(
      'details',
      { class: 'viewer-panel', id: 'files-panel' },
      h('summary', {}, 'Files ', this.fileBadge),
      h('p', { class: 'muted' }, 'File transfer policy for this resource: ', this.filePolicy, '.'),
      h(
        'p',
        { class: 'muted', id: 'file-where' },
        'Uploaded files appear on the remote desktop in the drive ',
        (this.driveName = h('code', { text: 'RAPXfer' })),
        '. To send a file here, save it into ',
        (this.downloadFolder = h('code', { text: 'RAPXfer\\ToClient' })),
        ' on the remote desktop. At most 25 MiB per file.',
      ),
      h(
        'section',
        { class: 'files', 'aria-labelledby': 'file-upload-heading' },
        h('h3', { id: 'file-upload-heading', text: 'Send to the remote desktop' }),
        this.fileUploadNote,
        this.dropzone,
      ),
      h(
        'section',
        { class: 'files', 'aria-labelledby': 'file-download-heading' },
        h('div', { class: 'files-head' }, h('h3', { id: 'file-download-heading', text: 'Files from the remote desktop' }), this.fileRefresh),
        this.fileDownloadNote,
        this.fileDownloads,
      ),
      h(
        'section',
        { class: 'files', 'aria-labelledby': 'file-transfers-heading' },
        h('h3', { id: 'file-transfers-heading', text: 'Transfers' }),
        this.fileTransfersEmpty,
        this.fileTransfers,
      ),
      this.fileStatus,
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
    this.bindDropzone();
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
    this.updateFileControls();
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
        // The policy in `session.attached` is the one that applies (and
        // staff may not be allowed to read the resource at all).
        if (!this.policyFromSocket) {
          this.clipboardMode = resource.policy?.clipboard_mode ?? null;
          this.fileMode = resource.policy?.file_transfer_mode ?? null;
        }
      }
    } catch {
      /* the policies stay unknown until the socket says */
    }
    if (this.destroyed) return;
    this.showPolicies();
    this.updateButtons();
  }

  /** Puts the clipboard and file policies into words. */
  showPolicies() {
    const unknown = 'unknown; the appliance enforces it';
    this.clipboardNote.textContent = `Clipboard policy: ${this.clipboardMode ? POLICY_WORDS[this.clipboardMode] ?? this.clipboardMode : unknown}.`;
    this.filePolicy.textContent = this.fileMode ? POLICY_WORDS[this.fileMode] ?? this.fileMode : unknown;
    this.filePolicy.dataset.mode = this.fileMode ?? '';
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
        if (payload.policy) {
          this.policyFromSocket = true;
          this.clipboardMode = payload.policy.clipboard_mode ?? null;
          this.fileMode = payload.policy.file_transfer_mode ?? null;
          if (payload.policy.transfer_drive) {
            this.driveName.textContent = payload.policy.transfer_drive;
            this.downloadFolder.textContent = `${payload.policy.transfer_drive}\\${payload.policy.download_folder ?? 'ToClient'}`;
          }
          this.showPolicies();
        }
        if (this.role === 'controller') {
          this.takenOver = false;
          document.getElementById('taken-over')?.remove();
          this.setState('connected', 'Connected');
        } else {
          this.setState('viewing', this.takenOver ? 'Taken over' : 'Watching');
        }
        this.startPing();
        this.updateButtons();
        this.pumpUploads();
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
        this.endTransfers('not_controller', 'Another device took over this session.', { waitingToo: true, runningToo: false });
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
        if (type?.startsWith('file_upload.') || type?.startsWith('file_download.')) this.onFileMessage(type, payload, event);
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
    // The appliance drops a socket's unfinished transfers with it.
    this.endTransfers('transport_closed', 'The connection dropped before the transfer finished.', { state: 'failed' });
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
    this.endTransfers('session_ended', 'The session ended before the transfer finished.', { state: 'failed', waitingToo: true });
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

  /** One `binary_v1` frame message (handed over to the pipeline: detached after). */
  onFrame(buffer) {
    this.pipeline.push(buffer);
  }

  frameFailed(error) {
    if (this.destroyed || this.lastError === 'frame') return;
    this.lastError = 'frame';
    this.notice(`A screen update could not be drawn: ${error?.message ?? error}`, { key: 'error.frame_decode' });
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

  // --------------------------------------------------------------- files

  /** What the policy and this socket let the user do with files now. */
  fileRights() {
    const connected = this.socket?.readyState === WebSocket.OPEN && this.role !== null && !this.ended;
    const controlling = connected && this.role === 'controller' && !this.takenOver;
    // An unknown policy is left to the appliance, which checks every request.
    const policyUpload = this.fileMode === null || UPLOAD_MODES.includes(this.fileMode);
    const policyDownload = this.fileMode === null || DOWNLOAD_MODES.includes(this.fileMode);
    return { connected, controlling, policyUpload, policyDownload, upload: controlling && policyUpload, download: controlling && policyDownload };
  }

  /** Why files cannot move that way (`upload` or `download`) now; '' if they can. */
  fileBlockedReason(direction, rights = this.fileRights()) {
    if (this.fileMode === 'disabled') return 'File transfer is turned off for this resource.';
    if (direction === 'upload' && !rights.policyUpload) {
      return 'Uploads are turned off: this resource’s policy only lets files come from the remote desktop to this computer.';
    }
    if (direction === 'download' && !rights.policyDownload) {
      return 'Downloads are turned off: this resource’s policy only lets files go from this computer to the remote desktop.';
    }
    if (this.ended) return 'The session has ended.';
    if (this.mode === 'shadow' || this.takenOver || this.role === 'viewer') return 'This view is read-only: only the device in control of the session can transfer files.';
    if (!rights.connected) return 'Files move only while the viewer is connected.';
    return '';
  }

  updateFileControls() {
    const rights = this.fileRights();
    const uploadWhy = this.fileBlockedReason('upload', rights);
    const downloadWhy = this.fileBlockedReason('download', rights);
    this.fileInput.disabled = Boolean(uploadWhy);
    this.dropzone.setAttribute('aria-disabled', String(Boolean(uploadWhy)));
    this.fileUploadNote.textContent = uploadWhy;
    this.fileUploadNote.hidden = !uploadWhy;
    this.fileDownloadNote.textContent = downloadWhy;
    this.fileDownloadNote.hidden = !downloadWhy;
    this.fileRefresh.disabled = Boolean(downloadWhy);
    this.renderOffered();
  }

  bindDropzone() {
    const zone = this.dropzone;
    const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');
    const highlight = (on) => zone.classList.toggle('is-over', on);
    // A file dropped elsewhere on the viewer must not navigate away from the session.
    for (const type of ['dragover', 'drop']) this.root.addEventListener(type, (event) => hasFiles(event) && event.preventDefault());
    zone.addEventListener('dragenter', (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      highlight(!this.fileInput.disabled);
    });
    zone.addEventListener('dragover', (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = this.fileInput.disabled ? 'none' : 'copy';
      highlight(!this.fileInput.disabled);
    });
    zone.addEventListener('dragleave', (event) => {
      if (!zone.contains(event.relatedTarget)) highlight(false);
    });
    zone.addEventListener('drop', (event) => {
      event.preventDefault();
      event.stopPropagation();
      highlight(false);
      const files = [...(event.dataTransfer?.files ?? [])];
      if (!files.length) return;
      if (this.fileInput.disabled) {
        this.notice(this.fileBlockedReason('upload') || 'Files cannot be uploaded now.', { kind: 'warn', key: 'event.file_upload_unavailable', id: 'file-drop-refused' });
        return;
      }
      this.uploadFiles(files);
    });
  }

  /** Says `text` to screen readers (the visible state is in the transfer list). */
  announce(text) {
    this.fileStatus.textContent = '';
    setTimeout(() => {
      this.fileStatus.textContent = text;
    }, 50);
  }

  /** The files offered for download, or why there are none. */
  renderOffered() {
    const rights = this.fileRights();
    const files = rights.download ? this.offered : null;
    this.fileBadge.hidden = !files?.length;
    this.fileBadge.textContent = files?.length ? `${files.length} to download` : '';
    const signature = JSON.stringify([rights.download, files]);
    if (signature === this.offeredSignature) return;
    this.offeredSignature = signature;
    // Keep the keyboard where it was across a new list.
    const focused = this.fileDownloads.contains(document.activeElement) ? document.activeElement.closest('li')?.dataset.fileName : null;
    this.fileDownloads.hidden = !rights.download;
    if (!rights.download) {
      setChildren(this.fileDownloads);
      return;
    }
    if (files === null) {
      setChildren(this.fileDownloads, h('li', { class: 'empty', text: 'Looking at the ToClient folder…' }));
      return;
    }
    if (!files.length) {
      setChildren(this.fileDownloads, h('li', { class: 'empty', text: 'Nothing to download yet.' }));
      return;
    }
    setChildren(
      this.fileDownloads,
      files.map((file) => {
        const size = humanSize(file.size);
        const modified = typeof file.modified_at === 'number' ? new Date(file.modified_at * 1000).toISOString() : null;
        return h(
          'li',
          { class: 'offered-file', dataset: { fileName: file.file_name } },
          h('span', { class: 'file-name', text: file.file_name }),
          h('span', { class: 'muted file-size', text: size }),
          modified ? h('time', { class: 'muted', datetime: modified, text: formatTime(modified) }) : null,
          h('button', {
            type: 'button',
            class: 'small secondary',
            text: 'Download',
            'aria-label': `Download ${file.file_name} (${size})`,
            onclick: () => this.startDownload(file),
          }),
        );
      }),
    );
    if (focused) [...this.fileDownloads.children].find((item) => item.dataset.fileName === focused)?.querySelector('button')?.focus();
  }

  /** Adds `transfer` to the list and to `this.transfers`. */
  addTransfer(transfer) {
    const what = transfer.direction === 'upload' ? 'Upload' : 'Download';
    transfer.progress = h('progress', { max: Math.max(1, transfer.size), value: 0, 'aria-label': `${what} of ${transfer.name}` });
    transfer.stateText = h('span', { class: 'transfer-state' });
    transfer.cancelButton = h('button', {
      type: 'button',
      class: 'small secondary',
      text: 'Cancel',
      'aria-label': `Cancel the ${what.toLowerCase()} of ${transfer.name}`,
      onclick: () => this.cancelTransfer(transfer),
    });
    transfer.detail = h('div', { class: 'transfer-detail' });
    transfer.row = h(
      'li',
      { class: 'transfer', tabindex: '-1', dataset: { transferId: transfer.id, direction: transfer.direction } },
      h('span', { class: 'transfer-name' }, h('span', { class: 'transfer-direction', text: `${what}: ` }), h('span', { class: 'file-name', text: transfer.name })),
      transfer.progress,
      transfer.stateText,
      transfer.cancelButton,
      transfer.detail,
    );
    this.transfers.set(transfer.id, transfer);
    this.fileTransfers.append(transfer.row);
    this.fileTransfersEmpty.hidden = true;
    // Keep the list short: the oldest finished transfers go first.
    const finished = [...this.transfers.values()].filter((item) => !this.isRunning(item));
    for (const old of finished.slice(0, Math.max(0, this.transfers.size - 50))) {
      old.row.remove();
      this.transfers.delete(old.id);
    }
    this.showTransfer(transfer);
  }

  isRunning(transfer) {
    return ['waiting', 'uploading', 'downloading'].includes(transfer.state);
  }

  showTransfer(transfer) {
    const { state, size, done } = transfer;
    transfer.row.dataset.state = state;
    transfer.progress.max = Math.max(1, size);
    transfer.progress.value = state === 'completed' ? Math.max(1, size) : Math.min(done, size);
    const percent = size ? Math.floor((done * 100) / size) : 0;
    const amount = `${percent} % (${humanSize(done)} of ${humanSize(size)})`;
    const renamed = transfer.finalName && transfer.finalName !== transfer.name ? `: saved as ${transfer.finalName}` : '';
    transfer.stateText.textContent =
      {
        waiting: 'Waiting',
        uploading: `Uploading… ${amount}`,
        downloading: `Downloading… ${amount}`,
        completed: `Completed${renamed}`,
        refused: 'Refused',
        cancelled: 'Cancelled',
        failed: 'Failed',
      }[state] ?? state;
    const running = this.isRunning(transfer);
    if (!running && transfer.row.contains(document.activeElement)) transfer.row.focus();
    transfer.cancelButton.hidden = !running;
    setChildren(
      transfer.detail,
      (state === 'refused' || state === 'failed') && transfer.event ? errorBox(transfer.event) : null,
      state === 'completed' && transfer.url ? h('a', { href: transfer.url, download: transfer.name, class: 'save-again', text: `Save ${transfer.name} again` }) : null,
    );
  }

  /** Ends `transfer` as `state`, with the `event` that explains a refusal. */
  finishTransfer(transfer, state, event = null) {
    transfer.state = state;
    transfer.event = event;
    transfer.chunks = null;
    this.showTransfer(transfer);
    if (transfer === this.currentUpload) {
      this.currentUpload = null;
      queueMicrotask(() => this.pumpUploads());
    }
    const what = transfer.direction === 'upload' ? 'Upload' : 'Download';
    if (state === 'completed') this.announce(`${what} of ${transfer.name} completed.`);
    else if (state === 'cancelled') this.announce(`${what} of ${transfer.name} cancelled.`);
    // Refusals and failures are announced by their alert.
  }

  /**
   * Ends, as `state`, the transfers this socket can no longer finish: the
   * running ones (`runningToo`) and the queued uploads (`waitingToo`).
   */
  endTransfers(code, message, { state = 'refused', waitingToo = false, runningToo = true } = {}) {
    for (const transfer of this.transfers.values()) {
      if (transfer.state === 'waiting' ? waitingToo : runningToo && this.isRunning(transfer)) {
        this.finishTransfer(transfer, state, localEvent(code, message));
      }
    }
    if (waitingToo) this.uploadQueue = [];
    this.offered = null;
  }

  /** Queues `files` for upload; they go one after another. */
  uploadFiles(files) {
    for (const file of files) {
      const transfer = { id: newTransferId(), direction: 'upload', name: file.name, size: file.size, done: 0, state: 'waiting', file };
      this.addTransfer(transfer);
      if (file.size > MAX_FILE_BYTES) {
        this.finishTransfer(transfer, 'refused', localEvent('file_too_large', `${file.name} (${humanSize(file.size)}) is larger than 25 MiB, the most one file transfer can carry.`));
        continue;
      }
      this.uploadQueue.push(transfer);
    }
    this.pumpUploads();
  }

  /** Starts the next queued upload when none is running (the appliance checks the policy). */
  pumpUploads() {
    if (this.currentUpload || !this.fileRights().controlling) return;
    while (this.uploadQueue.length) {
      const transfer = this.uploadQueue.shift();
      if (transfer.state !== 'waiting') continue;
      transfer.state = 'uploading';
      this.showTransfer(transfer);
      if (this.send('file_upload.start', { transfer_id: transfer.id, file_name: transfer.name, size: transfer.size })) {
        this.currentUpload = transfer;
        return;
      }
      this.finishTransfer(transfer, 'failed', localEvent('transport_closed', 'Not connected to the session.'));
    }
  }

  /** Sends the chunk of `transfer` that starts at `offset`. */
  async sendChunk(transfer, offset) {
    let data;
    try {
      data = await blobToBase64(transfer.file.slice(offset, offset + UPLOAD_CHUNK_BYTES));
    } catch (error) {
      if (transfer.state !== 'uploading') return;
      this.send('file_upload.cancel', { transfer_id: transfer.id });
      this.finishTransfer(transfer, 'failed', localEvent('file_unreadable', `${transfer.name} could not be read: ${error.message}`));
      return;
    }
    if (transfer.state !== 'uploading') return;
    if (!this.send('file_upload.chunk', { transfer_id: transfer.id, offset, data })) {
      this.finishTransfer(transfer, 'failed', localEvent('transport_closed', 'The connection dropped before the transfer finished.'));
    }
  }

  startDownload(file) {
    const running = [...this.transfers.values()].find((item) => item.direction === 'download' && item.name === file.file_name && this.isRunning(item));
    if (running) {
      running.row.focus();
      this.announce(`${file.file_name} is already downloading.`);
      return;
    }
    const transfer = { id: newTransferId(), direction: 'download', name: file.file_name, size: file.size, done: 0, state: 'downloading', chunks: [] };
    this.addTransfer(transfer);
    if (!this.send('file_download.start', { transfer_id: transfer.id, file_name: file.file_name })) {
      this.finishTransfer(transfer, 'failed', localEvent('transport_closed', 'Not connected to the session.'));
    }
  }

  cancelTransfer(transfer) {
    if (!this.isRunning(transfer)) return;
    if (transfer.state === 'uploading') this.send('file_upload.cancel', { transfer_id: transfer.id });
    if (transfer.state === 'downloading') this.send('file_download.cancel', { transfer_id: transfer.id });
    this.finishTransfer(transfer, 'cancelled');
  }

  /** A download is complete: check it and hand it to the browser. */
  async saveDownload(transfer, { size, sha256 }) {
    const blob = new Blob(transfer.chunks ?? [], { type: 'application/octet-stream' });
    transfer.chunks = null;
    if (blob.size !== size) {
      this.finishTransfer(transfer, 'failed', localEvent('size_mismatch', `${transfer.name} arrived with ${humanSize(blob.size)} instead of ${humanSize(size)}.`));
      return;
    }
    if (sha256 && crypto.subtle) {
      const got = await sha256Hex(blob).catch(() => sha256);
      if (got !== sha256) {
        this.finishTransfer(transfer, 'failed', localEvent('content_hash_mismatch', `${transfer.name} arrived damaged (its SHA-256 does not match).`));
        return;
      }
    }
    if (this.destroyed || transfer.state !== 'downloading') return;
    transfer.url = URL.createObjectURL(blob);
    this.objectUrls.push(transfer.url);
    transfer.done = size;
    this.finishTransfer(transfer, 'completed');
    const link = h('a', { href: transfer.url, download: transfer.name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
  }

  onFileMessage(type, payload, event) {
    const transfer = this.transfers.get(payload.transfer_id);
    const live = transfer && this.isRunning(transfer);
    switch (type) {
      case 'file_download.available': {
        const before = new Set((this.offered ?? []).map((file) => file.file_name));
        const first = this.offered === null;
        this.offered = Array.isArray(payload.files) ? payload.files : [];
        const added = this.offered.filter((file) => !before.has(file.file_name));
        this.renderOffered();
        if (!first && added.length) toast(added.length === 1 ? `${added[0].file_name} is ready to download (Files panel).` : `${added.length} files are ready to download (Files panel).`, 'info');
        break;
      }
      case 'file_upload.progress':
        if (!live || transfer.direction !== 'upload') break;
        transfer.done = Number(payload.received) || 0;
        this.showTransfer(transfer);
        this.sendChunk(transfer, transfer.done);
        break;
      case 'file_upload.completed':
        if (!live || transfer.direction !== 'upload') break;
        transfer.finalName = payload.file_name ?? transfer.name;
        transfer.done = payload.size ?? transfer.size;
        transfer.sha256 = payload.sha256;
        transfer.row.dataset.sha256 = payload.sha256 ?? '';
        this.finishTransfer(transfer, 'completed');
        break;
      case 'file_download.started':
        if (!live || transfer.direction !== 'download') break;
        transfer.size = Number(payload.size) || 0;
        this.showTransfer(transfer);
        // An empty file has no chunks: acknowledging nothing finishes it.
        if (transfer.size === 0) this.send('file_download.ack', { transfer_id: transfer.id, offset: 0 });
        break;
      case 'file_download.chunk': {
        if (!live || transfer.direction !== 'download') break;
        if (payload.offset !== transfer.done) {
          this.send('file_download.cancel', { transfer_id: transfer.id });
          this.finishTransfer(transfer, 'failed', localEvent('unexpected_offset', `${transfer.name}: a piece arrived out of order.`));
          break;
        }
        let bytes;
        try {
          bytes = base64ToBytes(payload.data ?? '');
        } catch {
          this.send('file_download.cancel', { transfer_id: transfer.id });
          this.finishTransfer(transfer, 'failed', localEvent('invalid_chunk_data', `${transfer.name}: a piece arrived damaged.`));
          break;
        }
        transfer.chunks.push(bytes);
        transfer.done += bytes.length;
        this.send('file_download.ack', { transfer_id: transfer.id, offset: transfer.done });
        this.showTransfer(transfer);
        break;
      }
      case 'file_download.completed':
        if (!live || transfer.direction !== 'download') break;
        this.saveDownload(transfer, payload);
        break;
      case 'file_upload.blocked':
      case 'file_download.blocked': {
        const reason = payload.reason ?? event?.code ?? 'refused';
        const notice = event ?? localEvent(reason, `The transfer was refused: ${reason.replaceAll('_', ' ')}.`);
        if (live) {
          // A refused chunk leaves the upload open on the appliance: let it go.
          if (type === 'file_upload.blocked' && payload.received !== null && payload.received !== undefined) this.send('file_upload.cancel', { transfer_id: transfer.id });
          this.finishTransfer(transfer, 'refused', notice);
          if (!this.filePanel.open) this.filePanel.open = true;
        } else if (!transfer) {
          // Not one of ours (a refused `file_download.list`): say it once.
          this.notice(notice);
        }
        break;
      }
      default:
        // `*.cancelled`: the list already says so.
        break;
    }
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
    this.pipeline.close();
    if (document.fullscreenElement === this.root) document.exitFullscreen().catch(() => {});
    for (const cleanup of this.cleanups) cleanup();
    for (const url of this.objectUrls) URL.revokeObjectURL(url);
  }
}
