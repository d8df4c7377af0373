// @ts-check
// Trust between a browser and a fresh appliance on the LAN, both ways
// (pure). The browser learns to trust the appliance's own CA (in
// APP_TLS=auto mode): its fingerprint grouped for reading aloud, where to
// download it, and how each system installs it. The appliance learns to
// trust whoever creates the first owner: the one-time set-up code from its
// data directory, and how long to wait after too many wrong ones (the
// words every rate limit's error box uses).

/** Where the appliance serves its platform CA (auto mode; 404 otherwise). */
export const CA_DOWNLOAD_PATH = '/api/v1/installation/ca.pem';
/** The name the download is saved under (the appliance's Content-Disposition). */
export const CA_FILE = 'rap-appliance-ca.pem';

/**
 * `installation.tls`.
 * @typedef {object} TlsView
 * @property {'off' | 'auto' | 'files' | string} mode
 * @property {string | null} [ca_fingerprint_sha256]  64 lowercase hex digits, auto mode only
 */

/**
 * A SHA-256 fingerprint as upper-case pairs (`AB:CD:…`), the way
 * certificate dialogs show it; null for anything that is not 64 hex digits.
 * @param {string | null | undefined} hex
 */
export function groupFingerprint(hex) {
  const digits = String(hex ?? '').replace(/[\s:]/g, '');
  if (!/^[0-9a-fA-F]{64}$/.test(digits)) return null;
  return digits.toUpperCase().match(/../g).join(':');
}

/**
 * The first `groups` pairs and an ellipsis: enough to compare by eye.
 * @param {string | null | undefined} hex
 * @param {number} [groups]
 */
export function shortFingerprint(hex, groups = 4) {
  const grouped = groupFingerprint(hex);
  return grouped ? `${grouped.split(':').slice(0, groups).join(':')}…` : null;
}

/**
 * The TLS mode in words.
 * @param {string | null | undefined} mode
 */
export function tlsModeWords(mode) {
  switch (mode) {
    case 'auto':
      return 'HTTPS, with a certificate from the appliance’s own CA (APP_TLS=auto)';
    case 'files':
      return 'HTTPS, with the certificate in APP_TLS_CERT_FILE (APP_TLS=files)';
    case 'off':
      return 'Plain HTTP, not encrypted (APP_TLS=off)';
    default:
      return mode ? String(mode) : 'unknown';
  }
}

/**
 * How each system trusts the downloaded CA: a sentence and the commands
 * to run (as an administrator) in the folder holding the file.
 * @type {readonly {os: string, text: string, commands: string[]}[]}
 */
export const TRUST_STEPS = Object.freeze([
  {
    os: 'Windows',
    text: 'Double-click the file → Install Certificate → Local Machine → “Place all certificates in the following store” → Trusted Root Certification Authorities. Or, in an administrator prompt:',
    commands: [`certutil -addstore -f ROOT ${CA_FILE}`],
  },
  {
    os: 'macOS',
    text: 'In Terminal:',
    commands: [`sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ${CA_FILE}`],
  },
  {
    os: 'Linux',
    text: 'For the system (Debian, Ubuntu), then for Chromium, which keeps its own store (certutil is in libnss3-tools); Firefox: Settings → Privacy & Security → View Certificates → Authorities → Import.',
    commands: [
      `sudo cp ${CA_FILE} /usr/local/share/ca-certificates/rap-appliance-ca.crt && sudo update-ca-certificates`,
      `certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n rap-appliance -i ${CA_FILE}`,
    ],
  },
  {
    os: 'iOS, iPadOS',
    text: 'Open the file and install the profile (Settings → General → VPN & Device Management), then turn on full trust for it: Settings → General → About → Certificate Trust Settings.',
    commands: [],
  },
  {
    os: 'Android',
    text: 'Settings → Security → More security settings → Encryption & credentials → Install a certificate → CA certificate, then choose the file.',
    commands: [],
  },
]);

// ----------------------------------------------------------- set-up code

/** Characters in a set-up code (7 groups of 4, Crockford's base32). */
export const SETUP_CODE_CHARS = 28;
export const SETUP_CODE_PLACEHOLDER = 'XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX';
/** Where a default installation keeps it (APP_DATA_DIR is ./data). */
export const SETUP_CODE_DEFAULT_PATH = './data/setup-code';

/**
 * A typed set-up code as the appliance reads it: case, spaces and dashes
 * do not matter.
 * @param {string} text
 */
export function normalizeSetupCode(text) {
  return String(text ?? '').replace(/[\s-]/g, '').toUpperCase();
}

/**
 * Why a typed code cannot be right, before it costs one of the limited
 * tries; '' when it has the right shape.
 * @param {string} text
 */
export function setupCodeProblem(text) {
  const code = normalizeSetupCode(text);
  if (!code) return 'Enter the set-up code.';
  if (!/^[0-9A-Z]+$/.test(code)) return 'The set-up code has only letters and digits (the dashes are optional).';
  if (code.length !== SETUP_CODE_CHARS) return `The set-up code has ${SETUP_CODE_CHARS} letters and digits in 7 groups of 4; this has ${code.length}.`;
  return '';
}

/**
 * A wait in words, for “try again in …”.
 * @param {number} seconds
 */
export function waitWords(seconds) {
  const s = Math.max(1, Math.ceil(Number(seconds) || 0));
  if (s < 90) return `${s} s`;
  const minutes = Math.ceil(s / 60);
  return `${minutes} minutes`;
}
