// @ts-check
// The Files panel's two lists. The files the remote desktop offers (its
// ToClient folder), each with a Download button. The transfers: one row
// per upload or download with a labelled <progress>, its state in words
// (`data-state` for scripts), a Cancel button while it runs, and, once
// over, why it was refused or a link to save a download again.

import { h, setChildren, errorBox, formatTime } from './ui.js';
import { humanSize, isRunning, transferStateText } from './transfers.js';

/** @typedef {import('./transfers.js').Transfer} Transfer */
/** @typedef {{file_name: string, size: number, modified_at?: number}} OfferedFile */

/** The ToClient folder's files, each with a Download button, and their count badge. */
export class OfferedList {
  /** @param {{onDownload: (file: OfferedFile) => void}} hooks */
  constructor({ onDownload }) {
    this.onDownload = onDownload;
    this.element = h('ul', { class: 'offered', id: 'file-downloads', 'aria-label': 'Files offered by the remote desktop' });
    /** How many files are offered, beside the panel's summary. */
    this.badge = h('span', { class: 'badge badge-viewer', id: 'file-badge', hidden: true });
    this.signature = null;
  }

  /**
   * Shows the files offered for download, or why there are none.
   * @param {OfferedFile[] | null} offered  null: not known yet
   * @param {boolean} allowed  whether this viewer may download now
   */
  render(offered, allowed) {
    const files = allowed ? offered : null;
    this.badge.hidden = !files?.length;
    this.badge.textContent = files?.length ? `${files.length} to download` : '';
    const signature = JSON.stringify([allowed, files]);
    if (signature === this.signature) return;
    this.signature = signature;
    // Keep the keyboard where it was across a new list.
    const list = this.element;
    const focused = list.contains(document.activeElement) ? document.activeElement.closest('li')?.dataset.fileName : null;
    list.hidden = !allowed;
    if (!allowed) {
      setChildren(list);
      return;
    }
    if (files === null) {
      setChildren(list, h('li', { class: 'empty', text: 'Looking at the ToClient folder…' }));
      return;
    }
    if (!files.length) {
      setChildren(list, h('li', { class: 'empty', text: 'Nothing to download yet.' }));
      return;
    }
    setChildren(
      list,
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
            onclick: () => this.onDownload(file),
          }),
        );
      }),
    );
    if (focused) [...list.children].find((item) => /** @type {HTMLElement} */ (item).dataset.fileName === focused)?.querySelector('button')?.focus();
  }
}

/** Finished transfers kept in the list beyond the running ones. */
const KEEP_TRANSFERS = 50;

/** The transfer list, and the transfers by id (the panel's record of them). */
export class TransferList {
  /** @param {{onCancel: (transfer: Transfer) => void}} hooks */
  constructor({ onCancel }) {
    this.onCancel = onCancel;
    /** @type {Map<string, Transfer>} transfer id → upload or download */
    this.transfers = new Map();
    this.element = h('ul', { class: 'transfers', id: 'file-transfers', 'aria-label': 'File transfers' });
    this.empty = h('p', { class: 'empty', text: 'No transfers yet.' });
  }

  /** @param {string} id */
  get(id) {
    return this.transfers.get(id);
  }

  values() {
    return this.transfers.values();
  }

  /**
   * Adds a row for `transfer` (and drops the oldest finished ones).
   * @param {Transfer} transfer
   */
  add(transfer) {
    const what = transfer.direction === 'upload' ? 'Upload' : 'Download';
    transfer.progress = h('progress', { max: Math.max(1, transfer.size), value: 0, 'aria-label': `${what} of ${transfer.name}` });
    transfer.stateText = h('span', { class: 'transfer-state' });
    transfer.cancelButton = h('button', {
      type: 'button',
      class: 'small secondary',
      text: 'Cancel',
      'aria-label': `Cancel the ${what.toLowerCase()} of ${transfer.name}`,
      onclick: () => this.onCancel(transfer),
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
    this.element.append(transfer.row);
    this.empty.hidden = true;
    // Keep the list short: the oldest finished transfers go first.
    const finished = [...this.transfers.values()].filter((item) => !isRunning(item));
    for (const old of finished.slice(0, Math.max(0, this.transfers.size - KEEP_TRANSFERS))) {
      old.row.remove();
      this.transfers.delete(old.id);
    }
    this.show(transfer);
  }

  /**
   * Brings the row of `transfer` up to date.
   * @param {Transfer} transfer
   */
  show(transfer) {
    const { state, size, done } = transfer;
    transfer.row.dataset.state = state;
    transfer.progress.max = Math.max(1, size);
    transfer.progress.value = state === 'completed' ? Math.max(1, size) : Math.min(done, size);
    transfer.stateText.textContent = transferStateText(transfer);
    const running = isRunning(transfer);
    // The Cancel button is about to hide: keep the keyboard on the row.
    if (!running && transfer.row.contains(document.activeElement)) transfer.row.focus();
    transfer.cancelButton.hidden = !running;
    setChildren(
      transfer.detail,
      (state === 'refused' || state === 'failed') && transfer.event ? errorBox(transfer.event) : null,
      state === 'completed' && transfer.url ? h('a', { href: transfer.url, download: transfer.name, class: 'save-again', text: `Save ${transfer.name} again` }) : null,
    );
  }
}
