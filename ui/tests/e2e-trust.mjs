// e2e.mjs's checks of how a browser and a fresh appliance come to trust
// each other on a LAN: the Content-Security-Policy the pages live under,
// the set-up code asked for on first run, and the appliance's own CA (its
// fingerprint on the set-up, sign-in and installation pages, its download
// and the steps to install it). Over HTTPS (APP_TLS=auto) RAP_CA_FILE is the
// appliance's tls/ca.pem, which Chromium is told to trust by its key alone
// (`--ignore-certificate-errors-spki-list`, not by ignoring certificate
// errors); RAP_SETUP_CODE_FILE is its setup-code.

import { readFile } from 'node:fs/promises';
import { createHash, X509Certificate } from 'node:crypto';
import { assert } from './lib.mjs';

/**
 * What the run knows about the appliance's TLS from the environment:
 * `TLS` (an https: base), `CA` (an X509Certificate or null), `SETUP_CODE`
 * and the Chromium arguments that trust the CA.
 */
export async function settings(base) {
  const TLS = base.startsWith('https:');
  const CA = process.env.RAP_CA_FILE ? new X509Certificate(await readFile(process.env.RAP_CA_FILE)) : null;
  const SETUP_CODE = process.env.RAP_SETUP_CODE_FILE ? (await readFile(process.env.RAP_SETUP_CODE_FILE, 'utf8')).trim() : null;
  if (TLS && !CA) throw new Error('over HTTPS, set RAP_CA_FILE to the appliance’s tls/ca.pem');
  // The hash of the CA's SubjectPublicKeyInfo; the appliance sends the CA
  // in its chain, so the CA's key vouches for the leaf it signed.
  const spki = CA ? createHash('sha256').update(CA.publicKey.export({ type: 'spki', format: 'der' })).digest('base64') : null;
  return { TLS, CA, SETUP_CODE, chromiumArgs: spki ? [`--ignore-certificate-errors-spki-list=${spki}`] : [] };
}

/** The page's Content-Security-Policy forbids inline scripts and styles; sockets only to this host. */
export async function expectPolicy(base, tls) {
  const response = await fetch(`${base}/`);
  const policy = response.headers.get('content-security-policy') ?? '';
  for (const directive of ["script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", `connect-src 'self' ${tls ? 'wss' : 'ws'}://`]) {
    assert(policy.includes(directive), `the policy has ${directive}: ${policy}`);
  }
}

/**
 * On the set-up page: where the code is, a malformed code refused before it
 * costs a try, a wrong one refused by the appliance with its reason. Leaves
 * the form filled in with the wrong code.
 */
export async function refuseWrongSetupCodes(page, owner, setupCode, ca) {
  const where = await page.locator('#setup-code-where').innerText();
  assert(where.includes('setup-code') && where.includes('./data/setup-code') && where.includes('log'), `where the code is: ${where}`);
  const field = page.getByLabel('Set-up code');
  assert((await field.getAttribute('placeholder')) === 'XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX', 'a grouped placeholder');
  if (ca) assert((await page.locator('#ca-fingerprint').innerText()) === ca.fingerprint256, 'the set-up page shows the CA fingerprint');
  await page.getByLabel('Email').fill(owner.email);
  await page.getByLabel('Display name').fill(owner.name);
  await page.getByLabel(/^Password/).fill(owner.password);
  await page.getByLabel('Repeat password').fill(owner.password);
  await field.fill('ABCD-EFGH');
  await page.getByRole('button', { name: 'Create owner' }).click();
  await page.locator('form [role=alert]', { hasText: '28 letters and digits' }).waitFor();
  // One character off, in lower case (which the appliance ignores).
  const wrong = setupCode.replace(/[0-9A-Z]/, (c) => (c === '0' ? '1' : '0'));
  await field.fill(wrong.toLowerCase());
  await page.getByRole('button', { name: 'Create owner' }).click();
  const alert = page.locator('form [role=alert][data-reason="setup_code_invalid"]');
  await alert.waitFor();
  assert((await alert.innerText()).includes('That set-up code is not right'), `refusal: ${await alert.innerText()}`);
  assert((await field.getAttribute('aria-invalid')) === 'true', 'the code field is marked');
}

/** The sign-in page's “Verify this appliance” line: there exactly when the appliance has its own CA. */
export async function expectVerifyLine(page, ca) {
  const verify = page.locator('#verify-appliance');
  if (!ca) {
    assert((await verify.count()) === 0, 'no verify line without the appliance’s own CA');
    return;
  }
  const text = await verify.innerText();
  assert(text.startsWith('Verify this appliance: CA fingerprint ') && text.includes(`${ca.fingerprint256.slice(0, 11)}…`), `verify line: ${text}`);
  assert((await verify.locator('code').getAttribute('title')) === `SHA-256 ${ca.fingerprint256}`, 'the whole fingerprint on hover');
  assert((await verify.getByRole('link').getAttribute('href')) === '/api/v1/installation/ca.pem', 'the CA download');
}

/** The installation page's TLS facts, the CA download and the steps per system. */
export async function expectInstallationTrust(page, tls, ca) {
  assert((await page.locator('#tls-mode').getAttribute('data-mode')) === (tls ? 'auto' : 'off'), 'the TLS mode');
  if (!ca) {
    assert((await page.locator('#ca-fingerprint').count()) === 0, 'no fingerprint without the appliance’s own CA');
    await page.locator('#installation-trust', { hasText: 'not encrypted' }).waitFor();
    return;
  }
  assert((await page.locator('#ca-fingerprint').innerText()) === ca.fingerprint256, 'the CA fingerprint, grouped');
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#ca-download').click()]);
  const pem = await readFile(await download.path(), 'utf8');
  assert(new X509Certificate(pem).fingerprint256 === ca.fingerprint256, 'the downloaded CA is the appliance’s');
  assert(download.suggestedFilename() === 'rap-appliance-ca.pem', `saved as ${download.suggestedFilename()}`);
  const steps = await page.locator('#trust-help').innerText();
  for (const expected of ['certutil -addstore -f ROOT', 'add-trusted-cert', 'update-ca-certificates', 'sql:$HOME/.pki/nssdb', 'Certificate Trust Settings']) {
    assert(steps.includes(expected), `the trust steps mention ${expected}`);
  }
}
