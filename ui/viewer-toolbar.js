// @ts-check
// The viewer's toolbar: the resource's name, the connection state, the
// latency, frames per second, how the picture comes (H.264 or pixels), who
// is watching, a read-only badge, and the buttons (fullscreen, remote
// resize, grayscale, paste, detach, terminate, close), enabled for what
// this viewer may do now. Arrow keys move between the buttons.

import { h } from './ui.js';

/**
 * What the buttons do (the viewer page's actions).
 * @typedef {object} ToolbarActions
 * @property {() => unknown} fullscreen
 * @property {() => unknown} resize
 * @property {() => unknown} grayscale
 * @property {() => unknown} paste
 * @property {() => unknown} detach
 * @property {() => unknown} terminate
 * @property {() => unknown} close
 */

/**
 * What decides which buttons work.
 * @typedef {object} ToolbarStatus
 * @property {boolean} controlling   this viewer controls the session
 * @property {boolean} connected     a socket is attached
 * @property {boolean} ended
 * @property {boolean} shadow        a read-only viewer from the start
 * @property {boolean} watching      attached as a viewer (read-only now)
 * @property {boolean} pasteBlocked  the clipboard policy or the role forbids sending
 */

/** The picture path in the status bar, and what it means. */
const PICTURE_WORDS = {
  h264: { text: 'H.264', title: 'The picture is the remote computer’s own H.264 video, decoded in this browser' },
  pixels: { text: 'Pixels', title: 'The picture comes as compressed pixels' },
};

export class ViewerToolbar {
  /**
   * @param {ToolbarActions} actions
   * @param {{grayscale: boolean}} initial
   */
  constructor(actions, { grayscale }) {
    /**
     * @param {string} label
     * @param {() => unknown} onclick
     * @param {Record<string, unknown>} [attrs]
     */
    const button = (label, onclick, attrs = {}) => h('button', { type: 'button', class: 'small secondary', onclick, ...attrs }, label);
    this.title = h('h1', { class: 'viewer-title', text: 'Remote desktop' });
    this.stateText = h('span', { class: 'conn-text', text: 'Connecting…' });
    this.stateBox = h('span', { class: 'conn', id: 'connection-state', dataset: { state: 'connecting' }, role: 'status', 'aria-live': 'polite' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), this.stateText);
    this.latency = h('span', { class: 'latency', id: 'latency', title: 'Round trip to the appliance', text: '— ms' });
    this.fps = h('span', { class: 'fps muted', id: 'fps', text: '' });
    this.picture = h('span', { class: 'picture muted', id: 'picture-path', text: '' });
    this.viewers = h('span', { class: 'viewers', id: 'viewers', hidden: true });
    this.roleBadge = h('span', { class: 'badge badge-viewer', hidden: true, text: 'Read-only' });

    this.fullscreenButton = button('Fullscreen', actions.fullscreen, { id: 'fullscreen', 'aria-pressed': 'false' });
    this.resizeButton = button('Resize remote to window', actions.resize, { id: 'resize-remote', title: 'Change the remote desktop’s size to fit this window' });
    this.grayButton = button('Grayscale', actions.grayscale, { id: 'grayscale', 'aria-pressed': String(grayscale) });
    this.pasteButton = button('Paste', actions.paste, { id: 'paste', title: 'Send this computer’s clipboard to the remote desktop' });
    this.detachButton = button('Detach', actions.detach, { id: 'detach', title: 'Leave the session running and come back later' });
    this.terminateButton = button('Terminate', actions.terminate, { id: 'terminate', class: 'small danger' });
    this.closeButton = button('Close', actions.close, { id: 'close-viewer', title: 'Close the viewer' });

    this.element = h(
      'div',
      { class: 'viewer-bar', role: 'toolbar', 'aria-label': 'Remote desktop controls' },
      this.title,
      this.stateBox,
      this.latency,
      this.fps,
      this.picture,
      this.viewers,
      this.roleBadge,
      h('span', { class: 'spacer' }),
      h('span', { class: 'tools' }, this.fullscreenButton, this.resizeButton, this.grayButton, this.pasteButton, this.detachButton, this.terminateButton, this.closeButton),
    );
    this.element.addEventListener('keydown', (event) => this.arrowKeys(event));
  }

  /**
   * @param {string} state
   * @param {string} text
   */
  setState(state, text) {
    this.stateBox.dataset.state = state;
    this.stateText.textContent = text;
  }

  /** @param {number | null} ms  null: none (not connected) */
  showLatency(ms) {
    this.latency.textContent = ms === null ? '' : `${ms} ms`;
    if (ms === null) delete this.latency.dataset.ms;
    else this.latency.dataset.ms = String(ms);
  }

  /**
   * Once a second: the updates painted in the last second, and how the
   * picture comes (null: not connected, both blank).
   * @param {number} updates
   * @param {'h264' | 'pixels' | null} path
   */
  showRate(updates, path) {
    this.fps.textContent = path ? `${updates} fps` : '';
    this.picture.textContent = path ? PICTURE_WORDS[path].text : '';
    this.picture.title = path ? PICTURE_WORDS[path].title : '';
    if (path) this.picture.dataset.path = path;
    else delete this.picture.dataset.path;
  }

  /** @param {number} count  read-only viewers watching (`session.viewers`) */
  showViewers(count) {
    this.viewers.hidden = !count;
    this.viewers.textContent = `${count} watching`;
    this.viewers.title = count ? `${count} read-only viewer(s) are watching this session` : '';
  }

  /** @param {boolean} on */
  showGrayscale(on) {
    this.grayButton.setAttribute('aria-pressed', String(on));
  }

  /** @param {boolean} active */
  showFullscreen(active) {
    this.fullscreenButton.setAttribute('aria-pressed', String(active));
    this.fullscreenButton.textContent = active ? 'Exit fullscreen' : 'Fullscreen';
  }

  /** @param {ToolbarStatus} status */
  update({ controlling, connected, ended, shadow, watching, pasteBlocked }) {
    this.resizeButton.disabled = !controlling;
    this.pasteButton.disabled = pasteBlocked;
    this.detachButton.disabled = !controlling;
    this.terminateButton.disabled = ended || shadow;
    this.grayButton.disabled = !connected;
    // An old round trip says nothing about a socket that is gone.
    if (!connected) this.showLatency(null);
    this.roleBadge.hidden = !watching;
    // A shadow viewer never controls: leave out what it cannot use.
    for (const control of [this.resizeButton, this.pasteButton, this.detachButton, this.terminateButton]) control.hidden = shadow;
  }

  /** @param {KeyboardEvent} event */
  arrowKeys(event) {
    if (event.key !== 'ArrowRight' && event.key !== 'ArrowLeft') return;
    const buttons = /** @type {HTMLButtonElement[]} */ ([...this.element.querySelectorAll('button:not([disabled])')]);
    const index = buttons.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
    if (index < 0) return;
    event.preventDefault();
    const next = buttons[(index + (event.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length];
    next.focus();
  }
}
