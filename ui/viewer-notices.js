// @ts-check
// The notices above the viewer's screen: live-plane events, API errors and
// plain text, newest first, at most four, each dismissable and carrying
// its message key for localisation. A notice with an id replaces the one
// before it; the same error again and again (a burst of refused input)
// shows once.

import { h, errorBox } from './ui.js';
import { revokedWords } from './viewer-close.js';

/** @typedef {import('./transfers.js').LiveEvent} LiveEvent */

/**
 * How to show a notice.
 * @typedef {object} NoticeOptions
 * @property {'error' | 'warn' | 'info'} [kind]
 * @property {string} [key]      the message key of a plain-text notice
 * @property {Node[]} [actions]  buttons or links after the text
 * @property {string} [id]       replaces the notice with this id
 */

const MAX_NOTICES = 4;

/** The way out of a viewer that cannot go on, for a notice's actions. */
export function homeLink() {
  return h('a', { href: '#/', class: 'small', text: 'Back to my desktops' });
}

/** The notices' box, `#viewer-notices` (an assertive live region). */
export class NoticeArea {
  constructor() {
    this.element = h('div', { class: 'viewer-notices', id: 'viewer-notices', 'aria-live': 'assertive' });
    /** @type {string | null} what was shown last by `error` or `frameFailed` */
    this.lastError = null;
  }

  /**
   * Shows a notice: an `event` object, an ApiError, or plain text.
   * @param {string | LiveEvent | Error} what
   * @param {NoticeOptions} [options]
   * @returns {HTMLElement}
   */
  show(what, { kind = 'error', key, actions = [], id } = {}) {
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
    this.element.prepend(box);
    while (this.element.childElementCount > MAX_NOTICES) this.element.lastElementChild.remove();
    return box;
  }

  /**
   * An `error` envelope's event, unless the same one is still shown.
   * @param {LiveEvent} event
   */
  error(event) {
    const signature = `${event.code}:${event.details?.reason ?? ''}`;
    if (this.lastError === signature && this.element.querySelector(`[data-code="${CSS.escape(String(event.code))}"]`)) return;
    this.lastError = signature;
    this.show(event);
  }

  /**
   * Another device took the session over and this socket was closed; the
   * button takes it back. Shown once however many times it is said.
   * @param {() => void} takeBack
   */
  takenOver(takeBack) {
    const shown = this.element.querySelector('#taken-over');
    if (shown) return shown;
    // Our own words: the appliance no longer lets this device keep watching.
    return this.show('Another device took over this session, so this one was disconnected.', {
      kind: 'warn',
      id: 'taken-over',
      key: 'event.session_taken_over',
      actions: [h('button', { type: 'button', class: 'small primary', id: 'take-back', text: 'Take back control', onclick: takeBack })],
    });
  }

  /**
   * The access behind the socket ended (`session.access_revoked`): the
   * event's words when it came, else ours; `data-reason` keeps the reason.
   * @param {string} reason
   * @param {LiveEvent | null} event
   * @param {Node[]} actions
   */
  revoked(reason, event, actions) {
    const options = { kind: /** @type {const} */ ('warn'), id: 'access-revoked', key: 'event.access_revoked', actions };
    const box = this.show(event ?? revokedWords(reason), options);
    box.dataset.reason = reason;
    return box;
  }

  /**
   * A frame that could not be drawn: said once, until another error.
   * @param {unknown} error
   */
  frameFailed(error) {
    if (this.lastError === 'frame') return;
    this.lastError = 'frame';
    this.show(`A screen update could not be drawn: ${/** @type {any} */ (error)?.message ?? error}`, { key: 'error.frame_decode' });
  }
}
