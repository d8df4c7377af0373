// @ts-check
// The viewer's Clipboard panel: text to the remote desktop (from the
// browser's clipboard when it lets us read it, else typed into the panel)
// and the remote desktop's copied text (into the browser's clipboard when
// it lets us write it, else shown in the panel).

import { h, toast } from './ui.js';
import { policyWords, clipboardSendBlocked } from './viewer-policy.js';

/**
 * @typedef {object} ClipboardHooks
 * @property {(type: string, payload?: object) => boolean} send  a live-plane message; false when not connected
 * @property {(text: string, options?: object) => unknown} notice  a notice above the canvas
 */

export class ClipboardPanel {
  /** @param {ClipboardHooks} hooks */
  constructor({ send, notice }) {
    this.send = send;
    this.notice = notice;
    /** @type {string | null} the resource's `clipboard_mode`; unknown until read */
    this.mode = null;
    // Increasing across reconnects, so the remote side can tell old from new.
    this.sequence = Date.now();
    this.out = h('textarea', { id: 'clipboard-out', rows: 3, spellcheck: 'false' });
    this.in = h('textarea', { id: 'clipboard-in', rows: 3, readonly: true, spellcheck: 'false' });
    this.note = h('p', { class: 'muted', id: 'clipboard-policy', text: 'Clipboard policy: checking…' });
    this.sendButton = h('button', { type: 'button', class: 'small secondary', id: 'clipboard-send', onclick: () => this.sendText(this.out.value) }, 'Send to remote');
    // The fallback when the browser will not let us at the clipboard.
    this.element = h(
      'details',
      { class: 'viewer-panel', id: 'clipboard-panel' },
      h('summary', { text: 'Clipboard' }),
      this.note,
      h('div', { class: 'field' }, h('label', { for: 'clipboard-out', text: 'Text to send to the remote desktop' }), this.out, h('div', { class: 'form-actions' }, this.sendButton)),
      h('div', { class: 'field' }, h('label', { for: 'clipboard-in', text: 'Last text copied on the remote desktop' }), this.in),
    );
  }

  showPolicy() {
    this.note.textContent = `Clipboard policy: ${policyWords(this.mode)}.`;
  }

  /**
   * Enables sending when it can work; returns whether it is blocked (for
   * the toolbar's Paste button).
   * @param {boolean} controlling
   */
  update(controlling) {
    const blocked = clipboardSendBlocked(this.mode, controlling);
    this.sendButton.disabled = blocked;
    return blocked;
  }

  /** Sends this computer's clipboard, or asks for it in the panel. */
  async paste() {
    if (navigator.clipboard?.readText) {
      try {
        const text = await navigator.clipboard.readText();
        this.sendText(text);
        return;
      } catch {
        /* not permitted: fall back to the text area */
      }
    }
    this.element.open = true;
    this.out.focus();
    this.notice('Paste the text into “Text to send” and press “Send to remote”.', { kind: 'info', id: 'paste-hint', key: 'event.clipboard_manual' });
  }

  /** @param {string} text */
  sendText(text) {
    if (!text) return;
    this.sequence += 1;
    if (this.send('clipboard.text', { text, sequence_id: this.sequence })) toast('Clipboard sent to the remote desktop.');
  }

  /**
   * The remote desktop copied `text` (`clipboard.text` from the server).
   * @param {string} text
   */
  async onRemoteText(text) {
    this.in.value = text;
    this.in.dataset.updated = new Date().toISOString();
    if (navigator.clipboard?.writeText) {
      try {
        await navigator.clipboard.writeText(text);
        toast('Copied the remote clipboard to this computer.');
        return;
      } catch {
        /* no permission: leave it in the text area */
      }
    }
    this.element.open = true;
    toast('The remote desktop copied text: select it in the Clipboard panel to copy it.', 'info');
  }
}
