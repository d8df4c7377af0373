// @ts-check
// The remote desktop viewer page: wires its parts together and follows
// the session's life (attached, watching, taken over, detached, ended) as
// the gateway reports it, with notices above the screen. The parts are
// modules of their own: the gateway socket (viewer-transport.js), the
// canvas (viewer-screen.js), keyboard and mouse (viewer-input.js), the
// toolbar (viewer-toolbar.js), the Clipboard panel (viewer-clipboard.js)
// and the Files panel (viewer-files.js). Whether a closed socket comes
// back is decided in viewer-close.js.

import * as api from './api.js';
import { h, setChildren, toast, confirmDialog, uid } from './ui.js';
import { go } from './nav.js';
import { state as appState } from './session.js';
import { takeHandOff } from './sessions.js';
import { GatewayTransport } from './viewer-transport.js';
import { closeDecision, revokedWords, sessionGone } from './viewer-close.js';
import { Fullscreen } from './viewer-fullscreen.js';
import { RemoteScreen, storedColorMode } from './viewer-screen.js';
import { InputCapture } from './viewer-input.js';
import { ClipboardPanel } from './viewer-clipboard.js';
import { FilesPanel } from './viewer-files.js';
import { ViewerToolbar } from './viewer-toolbar.js';
import { NoticeArea, homeLink } from './viewer-notices.js';

// Pages that start or resume a session hand the viewer its attach block.
export { handOff } from './sessions.js';

/** @typedef {import('./sessions.js').AttachBlock} AttachBlock */
/** @typedef {import('./sessions.js').ViewerMode} ViewerMode */
/** @typedef {import('./transfers.js').LiveEvent} LiveEvent */
/** @typedef {import('./viewer-transport.js').Envelope} Envelope */
/** @typedef {import('./viewer-notices.js').NoticeOptions} NoticeOptions */

/**
 * The route `#/viewer/<session id>` (`?mode=shadow`: read-only).
 * @param {HTMLElement} main
 * @param {import('./nav.js').PageContext} route
 */
export async function viewerPage(main, { match, params }) {
  const viewer = new Viewer(main, match[1], params.get('mode') === 'shadow' ? 'shadow' : 'control');
  await viewer.start();
  return () => viewer.destroy();
}

class Viewer {
  /**
   * @param {HTMLElement} main
   * @param {string} sessionId
   * @param {ViewerMode} mode
   */
  constructor(main, sessionId, mode) {
    this.main = main;
    this.sessionId = sessionId;
    this.mode = mode;
    /** @type {'controller' | 'viewer' | null} null until attached */
    this.role = null;
    this.ended = false;
    this.destroyed = false;
    this.takenOver = false;
    // No reconnects until the user acts: taken over, or the access ended.
    this.halted = false;
    // The policy in `session.attached` is the one that applies: the resource's is older.
    this.policyFromSocket = false;
    const send = (type, payload) => this.transport.send(type, payload);
    this.notices = new NoticeArea();
    const notice = (what, options) => this.notices.show(what, options);
    this.transport = new GatewayTransport({
      reattach: () => this.newAttach(this.takenOver && this.mode !== 'shadow' ? 'attach' : undefined),
      attachFailed: (error) => this.attachFailed(error),
      ended: () => this.ended || this.halted,
      colorMode: () => this.screen.colorMode,
      codecs: () => this.screen.attachCodecs(),
      onState: (state, text) => this.setState(state, text),
      onMessage: (message) => this.onMessage(message),
      onFrame: (buffer) => this.screen.onFrame(buffer),
      onClose: (code, last) => this.onClose(code, last),
      onLatency: (ms) => this.toolbar.showLatency(ms),
    });
    this.clipboard = new ClipboardPanel({ send, notice });
    this.files = new FilesPanel({ send, notice, status: () => this.status() });
    this.build();
    this.screen = new RemoteScreen(this.canvas, this.stage, { send, fail: (error) => this.frameFailed(error), reattach: () => this.transport.restart() });
    this.input = new InputCapture(this.canvas, {
      send,
      canInput: () => this.canInput(),
      onLeave: () => this.toolbar.fullscreenButton.focus(),
    });
    this.input.bind();
    this.files.bindDropzone(this.root);
    this.updateButtons();
    this.fullscreen = new Fullscreen(this.root, { toolbar: this.toolbar, screen: this.screen, canvas: this.canvas, notice });
    this.fpsTimer = setInterval(() => this.toolbar.showRate(this.screen.takeUpdateCount(), this.transport.socket ? this.screen.picturePath() : null), 1_000);
  }

  // ------------------------------------------------- for tests and the console

  /** The gateway socket, when there is one. */
  get socket() {
    return this.transport.socket;
  }

  /**
   * Sends a live-plane message; false when not connected.
   * @param {string} type
   * @param {object} [payload]
   */
  send(type, payload) {
    return this.transport.send(type, payload);
  }

  // ------------------------------------------------------------------ DOM

  build() {
    this.toolbar = new ViewerToolbar(
      {
        fullscreen: () => this.fullscreen.toggle(),
        resize: () => this.resizeRemote(),
        grayscale: () => this.toolbar.showGrayscale(this.screen.toggleColorMode() === 'grayscale'),
        paste: () => this.clipboard.paste(),
        detach: () => this.detach(),
        terminate: () => this.terminate(),
        close: () => this.close(),
      },
      { grayscale: storedColorMode(localStorage) === 'grayscale' },
    );
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
    this.stage = h('div', { class: 'viewer-stage', id: 'viewer-stage' }, this.canvas);
    const hint = h('p', { id: hintId, class: 'viewer-hint muted', text: 'Click the desktop to type into it. Ctrl+Alt+Home returns keyboard focus to these controls.' });

    this.root = h(
      'section',
      { class: 'viewer', id: 'viewer', 'aria-label': 'Remote desktop viewer', dataset: { sessionId: this.sessionId } },
      this.toolbar.element,
      this.notices.element,
      this.stage,
      hint,
      h('div', { class: 'viewer-panels' }, this.clipboard.element, this.files.element),
    );
    // A handle for tests and debugging from the console.
    /** @type {any} */ (this.root).rapViewer = this;
    setChildren(this.main, this.root);
  }

  /**
   * @param {string} state  `data-state`: connecting, connected, viewing, reconnecting, idle, error, ended
   * @param {string} text
   */
  setState(state, text) {
    this.toolbar.setState(state, text);
    this.root.dataset.state = state;
  }

  /**
   * Shows a notice: an `event` object, an ApiError, or plain text.
   * @param {string | LiveEvent | Error} what
   * @param {NoticeOptions} [options]
   */
  notice(what, options) {
    return this.notices.show(what, options);
  }

  /** What the panels need to know about this viewer's connection. */
  status() {
    return { open: this.transport.open, role: this.role, ended: this.ended, shadow: this.mode === 'shadow', takenOver: this.takenOver };
  }

  canInput() {
    return this.role === 'controller' && !this.ended && this.transport.open;
  }

  updateButtons() {
    const controlling = this.role === 'controller' && !this.ended;
    this.toolbar.update({
      controlling,
      connected: Boolean(this.transport.socket) && this.role !== null && !this.ended,
      ended: this.ended,
      shadow: this.mode === 'shadow',
      watching: this.role === 'viewer',
      pasteBlocked: this.clipboard.update(controlling),
    });
    this.files.update();
  }

  // -------------------------------------------------------------- startup

  async start() {
    this.loadDetails();
    const ready = this.screen.pipeline.whenReady(); // whether to attach with H.264: the frame worker says (within 2 s)
    let attach = takeHandOff(this.sessionId)?.attach;
    if (!attach) {
      try {
        attach = await this.newAttach();
      } catch (error) {
        this.attachFailed(error);
        return;
      }
    }
    await ready;
    this.transport.connect(attach);
  }

  /** Reads the session and its resource for the title and the policies. */
  async loadDetails() {
    try {
      const session = await api.get(`/sessions/${this.sessionId}`);
      const resource = await api.get(`/resources/${session.resource_id}`).catch(() => null);
      if (this.destroyed) return;
      if (resource) {
        this.toolbar.title.textContent = resource.name;
        document.title = `${resource.name} · RAP Appliance`;
        // The policy in `session.attached` is the one that applies (and
        // staff may not be allowed to read the resource at all).
        if (!this.policyFromSocket) {
          this.clipboard.mode = resource.policy?.clipboard_mode ?? null;
          this.files.mode = resource.policy?.file_transfer_mode ?? null;
        }
      }
    } catch {
      /* the policies stay unknown until the socket says */
    }
    if (this.destroyed) return;
    this.showPolicies();
    this.updateButtons();
  }

  showPolicies() {
    this.clipboard.showPolicy();
    this.files.showPolicy();
  }

  /**
   * A fresh attach block: reattach (controller) or shadow (viewer).
   * @param {'attach' | 'shadow'} [kind]
   * @returns {Promise<AttachBlock>}
   */
  async newAttach(kind = this.mode === 'shadow' ? 'shadow' : 'attach') {
    const answer = await api.post(`/sessions/${this.sessionId}/${kind}`);
    return answer.attach;
  }

  /** @param {any} error  an ApiError */
  attachFailed(error) {
    if (error.status === 409 && this.takenOver) {
      // Still someone else's: keep the takeover notice, do not spin.
      this.setState('idle', 'Taken over');
      return;
    }
    this.transport.forget();
    if (sessionGone(error)) {
      this.end(false);
      this.notice(error, { id: 'session-ended', actions: [homeLink()] });
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
    this.notice(error, { actions: [h('button', { type: 'button', class: 'small primary', text: 'Try again', onclick: () => this.transport.reconnectNow() })] });
    this.updateButtons();
  }

  // ------------------------------------------------------- the session's life

  /** @param {Envelope} message */
  onMessage(message) {
    const { type, payload = {}, event } = message;
    switch (type) {
      case 'session.attached':
        this.onAttached(payload);
        break;
      case 'session.state':
        if (payload.state === 'terminated' || payload.state === 'failed') {
          if (event) this.notice(event, { kind: payload.state === 'failed' ? 'error' : 'info', id: 'session-ended', actions: [homeLink()] });
          this.end(!event);
        } else if (payload.state === 'detached' && this.role === 'controller') {
          this.role = 'viewer';
          this.setState('viewing', 'Detached');
          this.updateButtons();
        }
        break;
      case 'session.viewers':
        this.toolbar.showViewers(payload.count);
        break;
      case 'session.taken_over':
        this.takenOverHere(); // the close (4411) follows at once
        break;
      case 'clipboard.text':
        this.clipboard.onRemoteText(payload.text ?? '');
        break;
      case 'transport.closed':
        // The transport keeps its notice for the close that follows.
        if (['session_ended', 'session_failed'].includes(payload.reason)) this.end(false);
        break;
      case 'error':
        this.notices.error(event ?? { code: payload.code, message_key: `error.${payload.code}`, fallback_message: `Error: ${payload.code}` });
        break;
      default:
        if (type?.startsWith('file_upload.') || type?.startsWith('file_download.')) this.files.onMessage(type, payload, event);
        break;
    }
  }

  /** @param {Record<string, any>} payload  `session.attached` */
  onAttached(payload) {
    this.role = payload.role ?? (this.mode === 'shadow' ? 'viewer' : 'controller');
    this.screen.colorMode = payload.color_mode ?? this.screen.colorMode;
    this.screen.attached(payload.codecs ?? []);
    this.toolbar.showGrayscale(this.screen.colorMode === 'grayscale');
    this.screen.setCanvasSize(payload.width, payload.height);
    if (payload.policy) {
      this.policyFromSocket = true;
      this.clipboard.mode = payload.policy.clipboard_mode ?? null;
      this.files.mode = payload.policy.file_transfer_mode ?? null;
      this.files.showDrive(payload.policy);
      this.showPolicies();
    }
    if (this.role === 'controller') {
      this.takenOver = false;
      document.getElementById('taken-over')?.remove();
      this.setState('connected', 'Connected');
    } else {
      this.setState('viewing', 'Watching');
    }
    this.transport.attached();
    this.updateButtons();
    this.files.pumpUploads();
    if (this.role === 'controller' && (document.activeElement === document.body || this.main.contains(document.activeElement))) this.canvas.focus({ preventScroll: true });
  }

  /** @param {unknown} error */
  frameFailed(error) {
    if (!this.destroyed) this.notices.frameFailed(error);
  }

  /**
   * The socket closed (or went quiet).
   * @param {number} code
   * @param {Envelope | null} last  the message that explained the close, if one came
   */
  onClose(code, last) {
    this.input.releaseAll(false);
    this.role = null;
    // The appliance drops a socket's unfinished transfers with it.
    this.files.endTransfers('transport_closed', 'The connection dropped before the transfer finished.', { state: 'failed' });
    this.updateButtons();
    if (this.destroyed) return;
    const decision = closeDecision(code, last);
    const notice = 'notice' in decision ? decision.notice : null;
    if (notice && !this.ended) this.notice(notice, { kind: 'warn' });
    if (decision.action === 'end' || this.ended) this.end(!notice);
    else if (decision.action === 'taken_over') this.takenOverHere();
    else if (decision.action === 'revoked') this.accessRevoked(decision.reason, decision.signIn, decision.event);
    else this.transport.reconnectAfterClose(decision.minAttempt, decision.why);
  }

  /** Another device holds the session: this one waits for "Take back control". */
  takenOverHere() {
    this.input.releaseAll();
    this.role = null;
    this.files.endTransfers('not_controller', 'Another device took over this session.', { waitingToo: true, runningToo: false });
    this.takenOver = true;
    this.halted = true;
    this.screen.blank();
    this.transport.cancelReconnect();
    this.setState('idle', 'Taken over');
    this.notices.takenOver(() => this.takeBack());
    this.updateButtons();
  }

  /**
   * The access behind the socket ended: no reconnect; a sign-in that is
   * gone too sends the user to the sign-in page, saying why.
   * @param {string} reason
   * @param {boolean} signIn
   * @param {LiveEvent | null} event
   */
  accessRevoked(reason, signIn, event) {
    this.halted = true;
    this.screen.blank();
    this.transport.cancelReconnect();
    this.setState('error', 'Access ended');
    const retry = () => {
      this.halted = false;
      document.getElementById('access-revoked')?.remove();
      this.transport.reconnectNow();
    };
    const actions = signIn
      ? [h('a', { href: '#/login', class: 'small', text: 'Sign in' })]
      : [reason === 'access_unverified' ? h('button', { type: 'button', class: 'small primary', text: 'Try again', onclick: retry }) : null, homeLink()];
    this.notices.revoked(reason, event, actions.filter(Boolean));
    this.updateButtons();
    if (signIn) {
      appState.loginNotice = { text: revokedWords(reason), kind: 'warn' };
      api.forgetSignIn(); // app.js hears it and moves to the sign-in page
    }
  }

  /**
   * The session is over: no more reconnects.
   * @param {boolean} [say]  add a generic notice
   */
  end(say = true) {
    // A session that is over cannot be taken back.
    document.getElementById('taken-over')?.remove();
    if (!this.ended) {
      this.ended = true;
      if (say && !document.getElementById('session-ended')) {
        this.notice('The session has ended.', { kind: 'info', id: 'session-ended', key: 'event.session_ended', actions: [homeLink()] });
      }
    }
    this.transport.cancelReconnect();
    this.setState('ended', 'Session ended');
    this.files.endTransfers('session_ended', 'The session ended before the transfer finished.', { state: 'failed', waitingToo: true });
    this.transport.drop();
    this.role = null;
    this.updateButtons();
  }

  /** Takes control back (or over) and reconnects with the new token. */
  async takeBack() {
    try {
      const answer = await api.post(`/sessions/${this.sessionId}/takeover`);
      this.transport.drop();
      this.mode = 'control';
      this.takenOver = false;
      this.halted = false;
      document.getElementById('taken-over')?.remove();
      this.transport.connect(answer.attach);
    } catch (error) {
      const gone = sessionGone(error);
      if (gone) this.end(false);
      this.notice(error, gone ? { id: 'session-ended', actions: [homeLink()] } : {});
    }
  }

  // ------------------------------------------------------------- actions

  resizeRemote() {
    const asked = this.screen.resizeRemote();
    if (asked) toast(`Asked the remote desktop for ${asked.width}×${asked.height}.`);
  }

  async detach() {
    try {
      this.input.releaseAll();
      await api.post(`/sessions/${this.sessionId}/detach`);
      this.ended = true; // nothing to reconnect to from here
      this.transport.drop();
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
    this.transport.cancelReconnect();
    this.input.releaseAll();
    this.transport.destroy();
    this.screen.destroy();
    this.fullscreen.destroy();
    this.input.destroy();
    clearInterval(this.fpsTimer);
    this.files.destroy();
  }
}
