// @ts-check
// What a resource's clipboard and file transfer policies let the viewer do
// now, and why not, in words. Pure: the appliance checks every request
// again, so these only decide what the controls offer.

/** @typedef {'disabled' | 'client_to_server' | 'server_to_client' | 'bidirectional'} TransferMode */

/**
 * What the viewer knows about its own connection, for the rights below.
 * @typedef {object} ViewerStatus
 * @property {boolean} open      the socket is open
 * @property {'controller' | 'viewer' | null} role  null until `session.attached`
 * @property {boolean} ended     the session is over
 * @property {boolean} shadow    opened read-only (`?mode=shadow`)
 * @property {boolean} takenOver another device took control
 */

/**
 * @typedef {object} FileRights
 * @property {boolean} connected
 * @property {boolean} controlling
 * @property {boolean} policyUpload
 * @property {boolean} policyDownload
 * @property {boolean} upload
 * @property {boolean} download
 */

/** Clipboard and file transfer policies in words. */
export const POLICY_WORDS = Object.freeze({
  disabled: 'disabled',
  client_to_server: 'from this computer to the remote desktop only',
  server_to_client: 'from the remote desktop to this computer only',
  bidirectional: 'both directions',
});
const UPLOAD_MODES = ['client_to_server', 'bidirectional'];
const DOWNLOAD_MODES = ['server_to_client', 'bidirectional'];

/**
 * A policy in words; an unknown one (not read yet, or not readable by
 * staff) is left to the appliance.
 * @param {string | null} mode
 */
export function policyWords(mode) {
  return mode ? POLICY_WORDS[mode] ?? mode : 'unknown; the appliance enforces it';
}

/**
 * Whether text may not be sent to the remote clipboard now.
 * @param {string | null} mode  the clipboard policy
 * @param {boolean} controlling
 */
export function clipboardSendBlocked(mode, controlling) {
  return !controlling || mode === 'disabled' || mode === 'server_to_client';
}

/**
 * What the policy and the connection let the user do with files now.
 * @param {string | null} mode  the file transfer policy
 * @param {ViewerStatus} status
 * @returns {FileRights}
 */
export function fileRights(mode, status) {
  const connected = status.open && status.role !== null && !status.ended;
  const controlling = connected && status.role === 'controller' && !status.takenOver;
  // An unknown policy is left to the appliance, which checks every request.
  const policyUpload = mode === null || UPLOAD_MODES.includes(mode);
  const policyDownload = mode === null || DOWNLOAD_MODES.includes(mode);
  return { connected, controlling, policyUpload, policyDownload, upload: controlling && policyUpload, download: controlling && policyDownload };
}

/**
 * Why files cannot move that way now; '' if they can.
 * @param {'upload' | 'download'} direction
 * @param {string | null} mode
 * @param {ViewerStatus} status
 * @param {FileRights} [rights]
 */
export function fileBlockedReason(direction, mode, status, rights = fileRights(mode, status)) {
  if (mode === 'disabled') return 'File transfer is turned off for this resource.';
  if (direction === 'upload' && !rights.policyUpload) {
    return 'Uploads are turned off: this resource’s policy only lets files come from the remote desktop to this computer.';
  }
  if (direction === 'download' && !rights.policyDownload) {
    return 'Downloads are turned off: this resource’s policy only lets files go from this computer to the remote desktop.';
  }
  if (status.ended) return 'The session has ended.';
  if (status.shadow || status.takenOver || status.role === 'viewer') return 'This view is read-only: only the device in control of the session can transfer files.';
  if (!rights.connected) return 'Files move only while the viewer is connected.';
  return '';
}
