// Shared by the end-to-end tests (e2e.mjs, e2e-rdp.mjs, e2e-h264.mjs) and the viewer
// benchmark (bench-viewer.mjs): settings from the environment, Chromium,
// a step runner that prints `ok`/`FAIL`/`skip` lines and the final
// `<label>: N passed, M failed` line, and helpers for the pages.

import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(HERE, 'artifacts');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const TIMEOUT = 15_000;

/** The appliance's base URL (RAP_URL); exits with a failure line without it. */
export function baseUrl(label = 'e2e') {
  const base = process.env.RAP_URL?.replace(/\/$/, '');
  if (!base) {
    console.error(`${label}: set RAP_URL to the appliance base URL`);
    console.log(`${label}: 0 passed, 1 failed`);
    process.exit(2);
  }
  return base;
}

/** The scripted desktop's (and the RDP test server's) test pattern at (x, y), RGBA. */
export const pattern = (x, y) => [x % 256, y % 256, 128, 255];

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns something truthy; throws after `timeout`. */
export async function until(description, probe, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${description} (last: ${JSON.stringify(last?.message ?? last)})`);
}

// ------------------------------------------------------------- harness

/**
 * Content-Security-Policy violations seen by any page since the step
 * began: the appliance forbids inline scripts, inline styles and eval, so
 * one of these is a bug in the UI even when the page looks right.
 */
const cspViolations = [];

/**
 * A run of steps. After the first failure the remaining steps are skipped;
 * a failure screenshots every page of `pages()` as
 * `<failurePrefix>-<index>.png`. `screenshot(page, name)` writes
 * `<prefix><name>.png` into the artifacts.
 */
export function createRun({ label = 'e2e', prefix = '', failurePrefix = 'failure', pages = () => [] } = {}) {
  const results = [];
  const shots = [];
  const started = Date.now();
  let failedOnce = false;

  async function step(name, body) {
    if (failedOnce) {
      results.push({ name, ok: false });
      console.log(`skip ${name} (an earlier step failed)`);
      return;
    }
    const t0 = Date.now();
    cspViolations.splice(0);
    try {
      await body();
      if (cspViolations.length) throw new Error(`Content-Security-Policy violations:\n${[...new Set(cspViolations)].join('\n')}`);
      results.push({ name, ok: true });
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (error) {
      failedOnce = true;
      results.push({ name, ok: false });
      console.log(`FAIL ${name} (${Date.now() - t0} ms)\n     ${String(error?.stack ?? error).split('\n').slice(0, 6).join('\n     ')}`);
      await Promise.all(
        pages()
          .filter(Boolean)
          .map((page, index) => page.screenshot({ path: path.join(ARTIFACTS, `${failurePrefix}-${index}.png`) }).catch(() => {})),
      );
    }
  }

  async function screenshot(page, name) {
    const file = path.join(ARTIFACTS, `${prefix}${name}.png`);
    await page.screenshot({ path: file, fullPage: false });
    shots.push(file);
  }

  /** Prints the summary and exits (non-zero when a step failed). */
  async function finish(browser) {
    await browser?.close().catch(() => {});
    const passed = results.filter((result) => result.ok).length;
    const failed = results.length - passed;
    console.log(`screenshots: ${shots.length} in ${ARTIFACTS}`);
    console.log(`time: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    console.log(`${label}: ${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  }

  return { step, screenshot, finish, shots, results, failed: () => failedOnce };
}

/** Headless Debian Chromium; on failure prints the failure line and exits. */
export async function launchChromium(label = 'e2e', extraArgs = []) {
  await mkdir(ARTIFACTS, { recursive: true });
  try {
    return await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        ...extraArgs,
      ],
    });
  } catch (error) {
    console.log(`FAIL launch Chromium at ${CHROMIUM}: ${error.message}`);
    console.log(`${label}: 0 passed, 1 failed`);
    process.exit(1);
  }
}

export function watchConsole(page, label) {
  page.on('pageerror', (error) => console.log(`     [${label} page error] ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    console.log(`     [${label} console] ${text}`);
    if (text.startsWith(CSP_TAG) || /Content Security Policy/i.test(text)) cspViolations.push(`[${label}] ${text}`);
  });
}

const CSP_TAG = '[csp violation]';

/**
 * Reports every `securitypolicyviolation` as a console error the page
 * watcher counts (Chromium logs most of them by itself; this catches the
 * rest, such as violations reported only to the page).
 */
function reportViolations(tag) {
  document.addEventListener('securitypolicyviolation', (event) => {
    console.error(`${tag} ${event.effectiveDirective} blocked ${event.blockedURI || 'inline'} at ${event.sourceFile}:${event.lineNumber}`);
  });
}

/**
 * A page in a new browser context of `viewport`, its console errors printed
 * with `label` and CSP violations failing the step. `contextOptions` go to
 * `browser.newContext`.
 */
export async function openPage(browser, viewport, label, contextOptions = {}) {
  const context = await browser.newContext({ viewport, ...contextOptions });
  await context.addInitScript(reportViolations, CSP_TAG);
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  watchConsole(page, label);
  return page;
}

// --------------------------------------------------------------- pages

export async function heading(page, text) {
  await page.getByRole('heading', { level: 1, name: text }).waitFor({ timeout: TIMEOUT });
}

/**
 * First run: creates the owner on `#/setup`; ends on "My desktops".
 * `onSetupPage()`, when given, runs on the empty setup page; `setupCode`
 * is typed into the set-up code field (which must be there exactly when
 * one is given).
 */
export async function bootstrapOwner(page, base, owner, { onSetupPage, setupCode } = {}) {
  await page.goto(`${base}/`);
  await heading(page, 'Set up this appliance');
  assert(page.url().endsWith('#/setup'), `expected #/setup, got ${page.url()}`);
  const codeField = page.getByLabel('Set-up code');
  assert((await codeField.count()) === (setupCode ? 1 : 0), setupCode ? 'the set-up code is asked for' : 'no set-up code is asked for');
  await onSetupPage?.();
  if (setupCode) await codeField.fill(setupCode);
  await page.getByLabel('Email').fill(owner.email);
  await page.getByLabel('Display name').fill(owner.name);
  await page.getByLabel(/^Password/).fill(owner.password);
  await page.getByLabel('Repeat password').fill(owner.password);
  await page.getByRole('button', { name: 'Create owner' }).click();
  await heading(page, 'My desktops');
  await page.locator('#account', { hasText: owner.name }).waitFor();
}

export async function signIn(page, base, user, deviceName) {
  await page.goto(`${base}/#/login`);
  await heading(page, 'Sign in');
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByLabel('Device name').fill(deviceName);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await heading(page, 'My desktops');
}

/** Follows a link of the main navigation. */
export function nav(page, name) {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
}

export function row(page, text) {
  return page.locator('tbody tr', { hasText: text });
}

export async function dialog(page, title) {
  const locator = page.getByRole('dialog', { name: title });
  await locator.waitFor({ timeout: TIMEOUT });
  return locator;
}

/** Pixels of the remote canvas (in remote coordinates). */
export async function pixels(page, points) {
  return page.evaluate((list) => {
    const canvas = document.getElementById('remote-canvas');
    const context = canvas.getContext('2d');
    return list.map(([x, y]) => Array.from(context.getImageData(x, y, 1, 1).data));
  }, points);
}

export async function viewerState(page) {
  return page.locator('#connection-state').getAttribute('data-state');
}

export async function waitConnected(page, state = 'connected', timeout = TIMEOUT) {
  await until(`viewer state ${state}`, async () => (await viewerState(page)) === state, timeout);
  await until('a painted frame', async () => Number((await page.locator('#remote-canvas').getAttribute('data-frames')) ?? 0) > 0, timeout);
}

/**
 * Waits for the viewer to be connected with a painted frame; fails at once,
 * with the viewer's notices, when the session ends or fails instead.
 */
export async function waitSessionConnected(page, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const state = await viewerState(page);
    if (state === 'connected') break;
    if (['ended', 'error', 'idle'].includes(state) || Date.now() > deadline) {
      const notices = (await page.locator('#viewer-notices').innerText().catch(() => '')).replace(/\s+/g, ' ').trim();
      throw new Error(`the viewer is ${state}, not connected${notices ? `: ${notices}` : ''}`);
    }
    await sleep(100);
  }
  await waitConnected(page, 'connected', timeout);
}

export const same = (a, b) => a.length === b.length && a.every((value, index) => value === b[index]);

/** Waits until every point `[x, y, rgba]` shows its expected colour. */
export async function expectPixels(page, description, expected, timeout = TIMEOUT) {
  await until(
    description,
    async () => {
      const got = await pixels(page, expected.map(([x, y]) => [x, y]));
      const bad = expected.findIndex(([, , colour], index) => !same(got[index], colour));
      return bad === -1 ? true : Promise.reject(new Error(`(${expected[bad][0]},${expected[bad][1]}) is ${got[bad]}, expected ${expected[bad][2]}`));
    },
    timeout,
  );
}

/** Client coordinates of the remote pixel (x, y) (its centre). */
export async function clientPoint(page, x, y) {
  return page.evaluate(
    ([rx, ry]) => {
      const canvas = document.getElementById('remote-canvas');
      const rect = canvas.getBoundingClientRect();
      return { x: rect.left + ((rx + 0.5) * rect.width) / canvas.width, y: rect.top + ((ry + 0.5) * rect.height) / canvas.height };
    },
    [x, y],
  );
}

/** The first browser after a takeover: the notice, "Taken over", and its socket closed. */
export async function expectTakenOver(page) {
  const notice = page.locator('#taken-over');
  await notice.waitFor();
  assert((await notice.getAttribute('data-message-key')) === 'event.session_taken_over', 'the notice keeps its message key');
  assert((await notice.innerText()).includes('Another device took over'), `notice text: ${await notice.innerText()}`);
  await until('the state “Taken over”', async () => (await viewerState(page)) === 'idle' && (await page.locator('#connection-state').innerText()).includes('Taken over'));
  assert(await page.evaluate(() => document.getElementById('viewer').rapViewer.socket === null), 'its socket is closed');
  await expectPixels(page, 'the desktop wiped', [[10, 10, [0, 0, 0, 255]], [300, 200, [0, 0, 0, 255]]]);
}

/** The signed-in page's access token (from its `rap.auth`). */
export function accessToken(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem('rap.auth'))?.access_token);
}

/** JSON API call with a bearer token (the tests' side door, for setup only). */
export async function apiCall(base, method, route, { token, body } = {}) {
  const response = await fetch(`${base}/api/v1${route}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text.slice(0, 300)}`);
  return json;
}

/** Creates an organization named `name` through the Organizations page. */
export async function createOrganization(page, name) {
  await nav(page, 'Organizations');
  await heading(page, 'Organizations');
  await page.getByRole('button', { name: 'New organization' }).click();
  const form = await dialog(page, 'New organization');
  await form.getByLabel('Name').fill(name);
  await form.getByRole('button', { name: 'Create organization' }).click();
  await row(page, name).waitFor();
}

/**
 * Creates an RDP resource at `host:port` in `organization` through the
 * Resources page (certificates ignored: the test servers' are
 * self-signed), sets its secret, and returns the text of its row.
 */
export async function createRdpResource(page, { organization, name, host, port, username, password }) {
  await nav(page, 'Resources');
  await heading(page, 'Resources');
  await page.getByRole('button', { name: 'New resource' }).click();
  const form = await dialog(page, 'New resource');
  await form.getByLabel('Organization').selectOption({ label: organization });
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Protocol').selectOption('rdp');
  await form.getByLabel('Host').fill(host);
  await form.getByLabel('Port').fill(String(port));
  await form.getByLabel('Certificate verification').selectOption('ignore');
  await form.getByRole('button', { name: 'Create resource' }).click();
  const secret = await dialog(page, `Set the secret of ${name}`);
  await secret.getByLabel('Username').fill(username);
  await secret.getByLabel('Password').fill(password);
  await secret.getByRole('button', { name: 'Save secret' }).click();
  await row(page, name).filter({ hasText: 'Rotate secret' }).waitFor();
  return row(page, name).innerText();
}
