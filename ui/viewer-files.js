// @ts-check
// The viewer's Files panel (PROTOCOL.md "Files"): uploads from a drop zone
// or a file input into the session's drive (RAPXfer; `session.attached`
// names it), one file after another in 256 KiB chunks; downloads of the
// files the remote desktop puts in its ToClient folder, acknowledged chunk
// by chunk and checked against their size and SHA-256; and the list of
// transfers with their progress and state.

import { h, toast } from './ui.js';
import { policyWords, fileRights, fileBlockedReason } from './viewer-policy.js';
import { OfferedList, TransferList } from './file-lists.js';
import {
  MAX_FILE_BYTES,
  UPLOAD_CHUNK_BYTES,
  humanSize,
  localEvent,
  blobToBase64,
  base64ToBytes,
  newTransferId,
  sha256Hex,
  isRunning,
  newlyOffered,
} from './transfers.js';

/** @typedef {import('./transfers.js').Transfer} Transfer */
/** @typedef {import('./transfers.js').TransferState} TransferState */
/** @typedef {import('./transfers.js').LiveEvent} LiveEvent */
/** @typedef {import('./viewer-policy.js').ViewerStatus} ViewerStatus */
/** @typedef {import('./file-lists.js').OfferedFile} OfferedFile */

/**
 * @typedef {object} FilesHooks
 * @property {(type: string, payload?: object) => boolean} send
 * @property {() => ViewerStatus} status
 * @property {(what: string | LiveEvent, options?: object) => unknown} notice
 */

export class FilesPanel {
  /** @param {FilesHooks} hooks */
  constructor({ send, status, notice }) {
    this.send = send;
    this.status = status;
    this.notice = notice;
    /** @type {string | null} the resource's `file_transfer_mode`; unknown until read */
    this.mode = null;
    this.transfers = new TransferList({ onCancel: (transfer) => this.cancelTransfer(transfer) });
    /** @type {Transfer[]} */
    this.uploadQueue = [];
    /** @type {Transfer | null} */
    this.currentUpload = null;
    /** @type {OfferedFile[] | null} the ToClient folder's files, as last offered */
    this.offered = null;
    this.offeredList = new OfferedList({ onDownload: (file) => this.startDownload(file) });
    /** @type {string[]} */
    this.objectUrls = [];
    this.destroyed = false;
    this.build();
  }

  build() {
    this.policy = h('span', { id: 'file-policy', text: 'checking…' });
    this.input = h('input', {
      type: 'file',
      id: 'file-upload',
      multiple: true,
      disabled: true,
      'aria-describedby': 'file-upload-note file-where',
      onchange: () => {
        const files = [...this.input.files];
        this.input.value = '';
        this.uploadFiles(files);
      },
    });
    this.uploadNote = h('p', { id: 'file-upload-note', class: 'alert alert-info file-note', hidden: true });
    this.dropzone = h(
      'div',
      { class: 'dropzone', id: 'file-dropzone', 'aria-disabled': 'true' },
      h('p', { class: 'dropzone-text', text: 'Drop files here to send them to the remote desktop, or' }),
      h('label', { for: 'file-upload', class: 'dropzone-label', text: 'Choose files to upload' }),
      this.input,
    );
    this.downloadNote = h('p', { id: 'file-download-note', class: 'alert alert-info file-note', hidden: true });
    this.refresh = h(
      'button',
      { type: 'button', class: 'small secondary', onclick: () => this.send('file_download.list'), id: 'file-refresh', title: 'Ask the remote desktop for its ToClient folder now' },
      'Check again',
    );
    this.statusLine = h('p', { class: 'visually-hidden', id: 'file-status', role: 'status', 'aria-live': 'polite' });
    this.driveName = h('code', { text: 'RAPXfer' });
    this.downloadFolder = h('code', { text: 'RAPXfer\\ToClient' });
    this.element = h(
      'details',
      { class: 'viewer-panel', id: 'files-panel' },
      h('summary', {}, 'Files ', this.offeredList.badge),
      h('p', { class: 'muted' }, 'File transfer policy for this resource: ', this.policy, '.'),
      h(
        'p',
        { class: 'muted', id: 'file-where' },
        'Uploaded files appear on the remote desktop in the drive ',
        this.driveName,
        '. To send a file here, save it into ',
        this.downloadFolder,
        ' on the remote desktop. At most 25 MiB per file.',
      ),
      h(
        'section',
        { class: 'files', 'aria-labelledby': 'file-upload-heading' },
        h('h3', { id: 'file-upload-heading', text: 'Send to the remote desktop' }),
        this.uploadNote,
        this.dropzone,
      ),
      h(
        'section',
        { class: 'files', 'aria-labelledby': 'file-download-heading' },
        h('div', { class: 'files-head' }, h('h3', { id: 'file-download-heading', text: 'Files from the remote desktop' }), this.refresh),
        this.downloadNote,
        this.offeredList.element,
      ),
      h(
        'section',
        { class: 'files', 'aria-labelledby': 'file-transfers-heading' },
        h('h3', { id: 'file-transfers-heading', text: 'Transfers' }),
        this.transfers.empty,
        this.transfers.element,
      ),
      this.statusLine,
    );
  }

  /**
   * The drive and folder `session.attached` names (the defaults otherwise).
   * @param {{transfer_drive?: string, download_folder?: string}} policy
   */
  showDrive({ transfer_drive, download_folder }) {
    if (!transfer_drive) return;
    this.driveName.textContent = transfer_drive;
    this.downloadFolder.textContent = `${transfer_drive}\\${download_folder ?? 'ToClient'}`;
  }

  showPolicy() {
    this.policy.textContent = policyWords(this.mode);
    this.policy.dataset.mode = this.mode ?? '';
  }

  rights() {
    return fileRights(this.mode, this.status());
  }

  /**
   * @param {'upload' | 'download'} direction
   * @param {import('./viewer-policy.js').FileRights} [rights]
   */
  blockedReason(direction, rights) {
    const status = this.status();
    return fileBlockedReason(direction, this.mode, status, rights ?? fileRights(this.mode, status));
  }

  /** Enables what the policy and the connection allow now, and says why not the rest. */
  update() {
    const rights = this.rights();
    const uploadWhy = this.blockedReason('upload', rights);
    const downloadWhy = this.blockedReason('download', rights);
    this.input.disabled = Boolean(uploadWhy);
    this.dropzone.setAttribute('aria-disabled', String(Boolean(uploadWhy)));
    this.uploadNote.textContent = uploadWhy;
    this.uploadNote.hidden = !uploadWhy;
    this.downloadNote.textContent = downloadWhy;
    this.downloadNote.hidden = !downloadWhy;
    this.refresh.disabled = Boolean(downloadWhy);
    this.renderOffered();
  }

  /**
   * Takes files dropped on the zone; `root` (the whole viewer) swallows
   * drops elsewhere, which would navigate away from the session.
   * @param {HTMLElement} root
   */
  bindDropzone(root) {
    const zone = this.dropzone;
    /** @param {DragEvent} event */
    const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');
    /** @param {boolean} on */
    const highlight = (on) => zone.classList.toggle('is-over', on);
    for (const type of ['dragover', 'drop']) root.addEventListener(type, (event) => hasFiles(/** @type {DragEvent} */ (event)) && event.preventDefault());
    zone.addEventListener('dragenter', (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      highlight(!this.input.disabled);
    });
    zone.addEventListener('dragover', (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = this.input.disabled ? 'none' : 'copy';
      highlight(!this.input.disabled);
    });
    zone.addEventListener('dragleave', (event) => {
      if (!zone.contains(/** @type {Node | null} */ (event.relatedTarget))) highlight(false);
    });
    zone.addEventListener('drop', (event) => {
      event.preventDefault();
      event.stopPropagation();
      highlight(false);
      const files = [...(event.dataTransfer?.files ?? [])];
      if (!files.length) return;
      if (this.input.disabled) {
        this.notice(this.blockedReason('upload') || 'Files cannot be uploaded now.', { kind: 'warn', key: 'event.file_upload_unavailable', id: 'file-drop-refused' });
        return;
      }
      this.uploadFiles(files);
    });
  }

  /**
   * Says `text` to screen readers (the visible state is in the transfer list).
   * @param {string} text
   */
  announce(text) {
    this.statusLine.textContent = '';
    setTimeout(() => {
      this.statusLine.textContent = text;
    }, 50);
  }

  /** The files offered for download, or why there are none. */
  renderOffered() {
    this.offeredList.render(this.offered, this.rights().download);
  }

  /**
   * Ends `transfer` as `state`, with the `event` that explains a refusal.
   * @param {Transfer} transfer
   * @param {TransferState} state
   * @param {LiveEvent | null} [event]
   */
  finishTransfer(transfer, state, event = null) {
    transfer.state = state;
    transfer.event = event;
    transfer.chunks = null;
    this.transfers.show(transfer);
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
   * @param {string} code
   * @param {string} message
   * @param {{state?: TransferState, waitingToo?: boolean, runningToo?: boolean}} [options]
   */
  endTransfers(code, message, { state = 'refused', waitingToo = false, runningToo = true } = {}) {
    for (const transfer of this.transfers.values()) {
      if (transfer.state === 'waiting' ? waitingToo : runningToo && isRunning(transfer)) {
        this.finishTransfer(transfer, state, localEvent(code, message));
      }
    }
    if (waitingToo) this.uploadQueue = [];
    this.offered = null;
  }

  /**
   * Queues `files` for upload; they go one after another.
   * @param {File[]} files
   */
  uploadFiles(files) {
    for (const file of files) {
      /** @type {Transfer} */
      const transfer = { id: newTransferId(), direction: 'upload', name: file.name, size: file.size, done: 0, state: 'waiting', file };
      this.transfers.add(transfer);
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
    if (this.currentUpload || !this.rights().controlling) return;
    while (this.uploadQueue.length) {
      const transfer = this.uploadQueue.shift();
      if (transfer.state !== 'waiting') continue;
      transfer.state = 'uploading';
      this.transfers.show(transfer);
      if (this.send('file_upload.start', { transfer_id: transfer.id, file_name: transfer.name, size: transfer.size })) {
        this.currentUpload = transfer;
        return;
      }
      this.finishTransfer(transfer, 'failed', localEvent('transport_closed', 'Not connected to the session.'));
    }
  }

  /**
   * Sends the chunk of `transfer` that starts at `offset`.
   * @param {Transfer} transfer
   * @param {number} offset
   */
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

  /** @param {OfferedFile} file */
  startDownload(file) {
    const running = [...this.transfers.values()].find((item) => item.direction === 'download' && item.name === file.file_name && isRunning(item));
    if (running) {
      running.row.focus();
      this.announce(`${file.file_name} is already downloading.`);
      return;
    }
    /** @type {Transfer} */
    const transfer = { id: newTransferId(), direction: 'download', name: file.file_name, size: file.size, done: 0, state: 'downloading', chunks: [] };
    this.transfers.add(transfer);
    if (!this.send('file_download.start', { transfer_id: transfer.id, file_name: file.file_name })) {
      this.finishTransfer(transfer, 'failed', localEvent('transport_closed', 'Not connected to the session.'));
    }
  }

  /** @param {Transfer} transfer */
  cancelTransfer(transfer) {
    if (!isRunning(transfer)) return;
    if (transfer.state === 'uploading') this.send('file_upload.cancel', { transfer_id: transfer.id });
    if (transfer.state === 'downloading') this.send('file_download.cancel', { transfer_id: transfer.id });
    this.finishTransfer(transfer, 'cancelled');
  }

  /**
   * A download is complete: check it and hand it to the browser.
   * @param {Transfer} transfer
   * @param {{size: number, sha256?: string}} completed  `file_download.completed`
   */
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

  /**
   * A `file_upload.*` or `file_download.*` message from the server.
   * @param {string} type
   * @param {Record<string, any>} payload
   * @param {LiveEvent} [event]
   */
  onMessage(type, payload, event) {
    const transfer = this.transfers.get(payload.transfer_id);
    const live = transfer && isRunning(transfer);
    switch (type) {
      case 'file_download.available': {
        const files = Array.isArray(payload.files) ? payload.files : [];
        const added = newlyOffered(this.offered, files);
        this.offered = files;
        this.renderOffered();
        if (added.length) toast(added.length === 1 ? `${added[0].file_name} is ready to download (Files panel).` : `${added.length} files are ready to download (Files panel).`, 'info');
        break;
      }
      case 'file_upload.progress':
        if (!live || transfer.direction !== 'upload') break;
        transfer.done = Number(payload.received) || 0;
        this.transfers.show(transfer);
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
        this.transfers.show(transfer);
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
        this.transfers.show(transfer);
        break;
      }
      case 'file_download.completed':
        if (!live || transfer.direction !== 'download') break;
        this.saveDownload(transfer, /** @type {{size: number, sha256?: string}} */ (payload));
        break;
      case 'file_upload.blocked':
      case 'file_download.blocked': {
        const reason = payload.reason ?? event?.code ?? 'refused';
        const notice = event ?? localEvent(reason, `The transfer was refused: ${reason.replaceAll('_', ' ')}.`);
        if (live) {
          // A refused chunk leaves the upload open on the appliance: let it go.
          if (type === 'file_upload.blocked' && payload.received !== null && payload.received !== undefined) this.send('file_upload.cancel', { transfer_id: transfer.id });
          this.finishTransfer(transfer, 'refused', notice);
          if (!this.element.open) this.element.open = true;
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

  destroy() {
    this.destroyed = true;
    for (const url of this.objectUrls) URL.revokeObjectURL(url);
  }
}
