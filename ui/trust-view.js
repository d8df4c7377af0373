// @ts-check
// The appliance's CA as the pages show it: a short “verify this
// appliance” line for the sign-in and set-up pages, the TLS facts for the
// installation page, and the download with the steps to trust it on each
// system. The words and formats are in trust.js.

import { h } from './ui.js';
import { CA_DOWNLOAD_PATH, CA_FILE, TRUST_STEPS, groupFingerprint, shortFingerprint, tlsModeWords } from './trust.js';

/** @typedef {import('./trust.js').TlsView} TlsView */

/** A link that downloads the CA certificate. */
export function caDownloadLink(text = 'Download CA certificate') {
  return h('a', { href: CA_DOWNLOAD_PATH, download: CA_FILE, id: 'ca-download', text });
}

/**
 * A grouped fingerprint that wraps only between pairs.
 * @param {string} grouped  `AB:CD:…`
 * @param {Record<string, any>} [attrs]
 */
function fingerprintCode(grouped, attrs = {}) {
  const pairs = grouped.split(':').flatMap((pair, index) => (index ? [':', h('wbr'), pair] : [pair]));
  return h('code', { class: 'fingerprint', ...attrs }, pairs);
}

/**
 * “Verify this appliance: CA fingerprint 36:CB:…” (the whole fingerprint
 * in the tooltip) and the download; nothing without a fingerprint.
 * @param {TlsView | null | undefined} tls
 */
export function verifyLine(tls) {
  const full = groupFingerprint(tls?.ca_fingerprint_sha256);
  if (!full) return null;
  return h(
    'p',
    { class: 'verify-appliance', id: 'verify-appliance' },
    'Verify this appliance: CA fingerprint ',
    h('code', { class: 'fingerprint', title: `SHA-256 ${full}`, text: shortFingerprint(full) }),
    ' · ',
    caDownloadLink('CA certificate'),
  );
}

/**
 * The TLS rows of a facts list (`dt`/`dd` pairs); `download` adds the CA
 * download beside the fingerprint.
 * @param {TlsView | null | undefined} tls
 * @param {{download?: boolean}} [options]
 */
export function tlsFacts(tls, { download = false } = {}) {
  const full = groupFingerprint(tls?.ca_fingerprint_sha256);
  return [
    h('dt', { text: 'TLS' }),
    h('dd', { id: 'tls-mode', dataset: { mode: tls?.mode ?? '' }, text: tlsModeWords(tls?.mode) }),
    full ? h('dt', { text: 'CA fingerprint (SHA-256)' }) : null,
    full ? h('dd', {}, fingerprintCode(full, { id: 'ca-fingerprint' }), download ? [h('br'), caDownloadLink()] : null) : null,
  ];
}

/**
 * What a browser needs to trust this appliance, by TLS mode.
 * @param {TlsView | null | undefined} tls
 */
export function trustHelp(tls) {
  if (tls?.mode === 'off') {
    return h('p', { class: 'alert alert-warn', text: 'Connections to this appliance are not encrypted. Use it only on loopback, or start it with APP_TLS=auto (its own CA) or APP_TLS=files (your certificate).' });
  }
  if (tls?.mode !== 'auto' || !groupFingerprint(tls.ca_fingerprint_sha256)) {
    return h('p', { class: 'hint', text: 'The certificate comes from your own files: browsers trust it when they trust the CA that issued it.' });
  }
  return h(
    'div',
    { id: 'trust-help' },
    h(
      'p',
      {},
      'This appliance signs its certificate with its own CA. Install the CA once on each device that opens the console, then check that the fingerprint it shows matches the one above. ',
      h('strong', {}, caDownloadLink(`Download CA certificate (${CA_FILE})`)),
    ),
    h(
      'dl',
      { class: 'trust-steps' },
      TRUST_STEPS.map((step) => [
        h('dt', { text: step.os }),
        h('dd', {}, h('span', { text: step.text }), step.commands.map((command) => h('code', { class: 'command', text: command }))),
      ]),
    ),
  );
}
