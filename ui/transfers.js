// @ts-check
// File transfers of the viewer's Files panel, the parts without a page:
// limits, sizes in words, transfer ids, base64 both ways, the SHA-256 a
// download is checked against, and each transfer state in words.

/** Largest file either way (the appliance checks it too). */
export const MAX_FILE_BYTES = 25 * 1024 * 1024;
/** Bytes per `file_upload.chunk` (the most the appliance takes). */
export const UPLOAD_CHUNK_BYTES = 256 * 1024;

/**
 * A live-plane `event` (the notice shape of PROTOCOL.md), or a local one.
 * @typedef {object} LiveEvent
 * @property {string} code
 * @property {string} message_key
 * @property {string} fallback_message
 * @property {{reason?: string, [key: string]: unknown}} [details]
 * @property {string} [trace_id]
 */

/** @typedef {'waiting' | 'uploading' | 'downloading' | 'completed' | 'refused' | 'cancelled' | 'failed'} TransferState */

/**
 * One upload or download and its row in the transfer list.
 * @typedef {object} Transfer
 * @property {string} id            the `transfer_id` (a UUID)
 * @property {'upload' | 'download'} direction
 * @property {string} name          the file name asked for
 * @property {number} size          bytes
 * @property {number} done          bytes sent (acknowledged) or received so far
 * @property {TransferState} state
 * @property {File} [file]          an upload's source
 * @property {Uint8Array<ArrayBuffer>[] | null} [chunks]  a download's bytes so far
 * @property {LiveEvent | null} [event]      why it was refused or failed
 * @property {string} [finalName]   the name the appliance saved an upload as
 * @property {string} [sha256]
 * @property {string} [url]         a completed download's object URL
 * @property {HTMLLIElement} [row]
 * @property {HTMLProgressElement} [progress]
 * @property {HTMLSpanElement} [stateText]
 * @property {HTMLButtonElement} [cancelButton]
 * @property {HTMLDivElement} [detail]
 */

/**
 * A byte count for people: 512 B, 3.4 KiB, 12.0 MiB.
 * @param {number | string} bytes
 */
export function humanSize(bytes) {
  const value = Number(bytes) || 0;
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  if (value < 1024 ** 3) return `${(value / 1024 ** 2).toFixed(1)} MiB`;
  return `${(value / 1024 ** 3).toFixed(1)} GiB`;
}

/**
 * A local refusal shaped like a live-plane `event`.
 * @param {string} code
 * @param {string} fallback_message
 * @returns {LiveEvent}
 */
export const localEvent = (code, fallback_message) => ({ code, message_key: `event.${code}`, fallback_message });

/**
 * Base64 of a Blob (a file slice).
 * @param {Blob} blob
 * @returns {Promise<string>}
 */
export function blobToBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).slice(String(reader.result).indexOf(',') + 1));
    reader.onerror = () => reject(reader.error ?? new Error('The file could not be read.'));
    reader.readAsDataURL(blob);
  });
}

/**
 * The bytes of a base64 text; throws on text that is not base64.
 * @param {string} text
 */
export function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/**
 * A UUID v4 for a transfer (`crypto.randomUUID` needs a secure context).
 * @returns {string}
 */
export function newTransferId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The SHA-256 of a Blob, lowercase hex (as `file_download.completed` has it).
 * @param {Blob} blob
 */
export async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * Whether `transfer` can still move bytes (and be cancelled).
 * @param {{state: string}} transfer
 */
export function isRunning(transfer) {
  return ['waiting', 'uploading', 'downloading'].includes(transfer.state);
}

/**
 * A transfer's state in words, with its progress while it runs.
 * @param {Pick<Transfer, 'state' | 'size' | 'done' | 'name' | 'finalName'>} transfer
 */
export function transferStateText(transfer) {
  const { state, size, done } = transfer;
  const percent = size ? Math.floor((done * 100) / size) : 0;
  const amount = `${percent} % (${humanSize(done)} of ${humanSize(size)})`;
  const renamed = transfer.finalName && transfer.finalName !== transfer.name ? `: saved as ${transfer.finalName}` : '';
  return (
    {
      waiting: 'Waiting',
      uploading: `Uploading… ${amount}`,
      downloading: `Downloading… ${amount}`,
      completed: `Completed${renamed}`,
      refused: 'Refused',
      cancelled: 'Cancelled',
      failed: 'Failed',
    }[state] ?? state
  );
}

/**
 * The files of a new `file_download.available` that the last one did not
 * offer (none the first time: nothing was known before).
 * @param {{file_name: string}[] | null} before
 * @param {{file_name: string}[]} now
 */
export function newlyOffered(before, now) {
  if (before === null) return [];
  const names = new Set(before.map((file) => file.file_name));
  return now.filter((file) => !names.has(file.file_name));
}
