// End-to-end test of the web UI in headless Chromium (Debian's), through
// the pages only: first run, sign-in, admin console, a session on the
// scripted desktop drawn on the canvas, input, detach and resume,
// takeover from a second browser (which disconnects the first), shadowing,
// a moving picture as the appliance's H.264 (e2e-motion.mjs), clipboard,
// file transfer (refused by policy; upload and download), reconnect, rate
// limits, and a disabled user's viewer closed.
//
//   RAP_URL=http://127.0.0.1:18080 RAP_DATA_DIR=/path/to/data node e2e.mjs
//
// The appliance must be fresh (not bootstrapped) and in development mode.
// RAP_DATA_DIR is its APP_DATA_DIR: the file steps read uploads from and put
// downloads into `<RAP_DATA_DIR>/transfers/<session id>/` (without it they
// fail). Over HTTPS (APP_TLS=auto) set RAP_CA_FILE to its tls/ca.pem:
// Chromium trusts that CA alone (by its key, not by ignoring certificate
// errors) and the pages must show its fingerprint; RAP_SETUP_CODE_FILE
// (its setup-code) makes the first step type the set-up code (these
// checks are in e2e-trust.mjs). Without them the appliance must allow the
// insecure bootstrap. Screenshots go to
// ./artifacts/ (prefixed `tls-` over HTTPS). The last line is
// `e2e: N passed, M failed`.

import { mkdir, readFile, writeFile, access, readdir } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import * as lib from './lib.mjs';
import * as trust from './e2e-trust.mjs';
import * as revocation from './e2e-access.mjs';
import { motionSteps } from './e2e-motion.mjs';
import { ARTIFACTS, pattern, assert, until, sleep, heading, nav, row, dialog, pixels, viewerState, waitConnected, expectPixels, clientPoint } from './lib.mjs';

const BASE = lib.baseUrl('e2e');
const DATA_DIR = process.env.RAP_DATA_DIR;
const { TLS, CA, SETUP_CODE, chromiumArgs } = await trust.settings(BASE);

const OWNER = { email: 'owner@example.com', name: 'Olivia Owner', password: 'correct horse battery staple' };
const STAFF = { email: 'staff@example.com', name: 'Sam Staff', password: 'another long password' };
const ORG = { name: 'E2E Office', slug: 'e2e-office' };
const RESOURCE = { name: 'Office PC', host: 'office-pc.example' };
const FILES_RESOURCE = { name: 'Files Desk', host: 'files-desk.example' };
const VNC_RESOURCE = { name: 'Lab Mac', host: 'lab-mac.example' };

let browser;
let pageA;
let pageB;
const pages = () => [pageA, pageB].filter(Boolean);

// The harness (steps, screenshots, the final line) and the page helpers are in lib.mjs.
const PREFIX = TLS ? 'tls-' : '';
const { step, screenshot, finish, shots } = lib.createRun({ label: 'e2e', prefix: PREFIX, failurePrefix: `${PREFIX}failure`, pages });
const signIn = (page, user, deviceName) => lib.signIn(page, BASE, user, deviceName);

// ----------------------------------------------------------------- steps

await mkdir(ARTIFACTS, { recursive: true });
browser = await lib.launchChromium('e2e', chromiumArgs);

pageA = await lib.openPage(browser, { width: 1280, height: 860 }, 'A');

await step('the appliance sends a Content-Security-Policy without inline scripts or styles', async () => {
  await trust.expectPolicy(BASE, TLS);
});

await step(SETUP_CODE ? 'first run asks for the set-up code, refuses a wrong one and creates the owner' : 'first run shows the owner bootstrap and creates the owner', async () => {
  const onSetupPage = async () => {
    await screenshot(pageA, '01-setup');
    if (!SETUP_CODE) return;
    await trust.refuseWrongSetupCodes(pageA, OWNER, SETUP_CODE, CA);
    await screenshot(pageA, '01b-setup-code-refused');
  };
  await lib.bootstrapOwner(pageA, BASE, OWNER, { onSetupPage, setupCode: SETUP_CODE });
  if (SETUP_CODE) assert(await access(process.env.RAP_SETUP_CODE_FILE).then(() => false, () => true), 'the used set-up code file is deleted');
});

await step('sign out, a refused sign-in shows the fallback message, sign in with a device name', async () => {
  await pageA.getByRole('button', { name: 'Sign out' }).click();
  await heading(pageA, 'Sign in');
  await pageA.getByText('You have signed out.').waitFor();
  await pageA.getByLabel('Email').fill(OWNER.email);
  await pageA.getByLabel('Password').fill('not the password at all');
  await pageA.getByRole('button', { name: 'Sign in' }).click();
  const alert = pageA.locator('form [role=alert]');
  await alert.waitFor();
  assert((await alert.getAttribute('data-message-key')) === 'error.invalid_credentials', 'the alert keeps error.invalid_credentials');
  await trust.expectVerifyLine(pageA, CA);
  await screenshot(pageA, '02-login');
  await signIn(pageA, OWNER, 'E2E laptop');
  const device = await pageA.evaluate(() => JSON.parse(localStorage.getItem('rap.device')));
  assert(device?.name === 'E2E laptop' && /^[0-9a-f-]{36}$/.test(device.id), `device remembered: ${JSON.stringify(device)}`);
});

await step('create a user (platform admin)', async () => {
  await nav(pageA, 'Users');
  await heading(pageA, 'Users');
  await pageA.getByRole('button', { name: 'New user' }).click();
  const form = await dialog(pageA, 'New user');
  await form.getByLabel('Email').fill(STAFF.email);
  await form.getByLabel('Display name').fill(STAFF.name);
  await form.getByLabel('Initial password').fill(STAFF.password);
  await form.getByRole('button', { name: 'Create user' }).click();
  await row(pageA, STAFF.email).getByRole('button', { name: 'Disable' }).waitFor();
  assert((await row(pageA, OWNER.email).getByRole('button', { name: 'Disable' }).count()) === 0, 'no Disable button for yourself');
  await screenshot(pageA, '03-users');
});

await step('create and rename an organization, add a member and an identity source', async () => {
  await nav(pageA, 'Organizations');
  await heading(pageA, 'Organizations');
  await pageA.getByRole('button', { name: 'New organization' }).click();
  let form = await dialog(pageA, 'New organization');
  await form.getByLabel('Name').fill('E2E Offce');
  await form.getByRole('button', { name: 'Create organization' }).click();
  await row(pageA, 'E2E Offce').waitFor();
  await row(pageA, 'E2E Offce').getByRole('button', { name: 'Rename' }).click();
  form = await dialog(pageA, 'Rename E2E Offce');
  assert((await form.getByLabel('Slug').inputValue()) === 'e2e-offce', 'slug made from the name');
  await form.getByLabel('Name').fill(ORG.name);
  await form.getByLabel('Slug').fill(ORG.slug);
  await form.getByRole('button', { name: 'Save' }).click();
  await row(pageA, ORG.name).waitFor();
  assert((await row(pageA, ORG.name).innerText()).includes(ORG.slug), 'slug renamed');
  await screenshot(pageA, '04-organizations');

  await row(pageA, ORG.name).getByRole('link', { name: ORG.name }).click();
  await heading(pageA, ORG.name);
  await pageA.getByRole('button', { name: 'Add member' }).click();
  form = await dialog(pageA, 'Add member');
  await form.getByLabel('User').selectOption({ label: `${STAFF.name} <${STAFF.email}>` });
  await form.getByLabel('Role').selectOption('org_operator');
  await form.getByRole('button', { name: 'Add member' }).click();
  await pageA.locator('#members tbody tr', { hasText: STAFF.email }).waitFor();
  await pageA.locator('#members tbody tr', { hasText: STAFF.email }).getByRole('button', { name: /Change role/ }).click();
  form = await dialog(pageA, 'Change membership');
  await form.getByLabel('Role').selectOption('org_member');
  await form.getByRole('button', { name: 'Save' }).click();
  await pageA.locator('#members tbody tr', { hasText: STAFF.email }).filter({ hasText: 'Member' }).waitFor();

  await pageA.getByRole('button', { name: 'Add identity source' }).click();
  form = await dialog(pageA, 'Add identity source');
  await form.getByLabel('Name').fill('Office directory');
  await form.getByLabel('Configuration (JSON object)').fill('{"url": "ldaps://dc.office.example", "bind_password": "hunter2"}');
  await form.getByRole('button', { name: 'Add source' }).click();
  const source = pageA.locator('#identity-sources tbody tr', { hasText: 'Office directory' });
  await source.waitFor();
  assert((await source.innerText()).includes('[redacted]'), 'the credential in the configuration is redacted');
  await screenshot(pageA, '05-organization');
});

await step('create a resource with a secret; a bad host shows the envelope’s message', async () => {
  await nav(pageA, 'Resources');
  await heading(pageA, 'Resources');
  await pageA.getByRole('button', { name: 'New resource' }).click();
  const form = await dialog(pageA, 'New resource');
  await form.getByLabel('Organization').selectOption({ label: ORG.name });
  await form.getByLabel('Name').fill(RESOURCE.name);
  await form.getByLabel('Host').fill('not a host name');
  await form.getByLabel('Clipboard').selectOption('bidirectional');
  await form.getByRole('button', { name: 'Create resource' }).click();
  const alert = form.locator('[role=alert]');
  await alert.waitFor();
  assert((await alert.getAttribute('data-message-key')) === 'error.invalid_request', 'invalid_request kept in data-message-key');
  assert((await form.getByLabel('Host').getAttribute('aria-invalid')) === 'true', 'the host field is marked invalid');
  await form.getByLabel('Host').fill(RESOURCE.host);
  await form.getByRole('button', { name: 'Create resource' }).click();
  const secret = await dialog(pageA, `Set the secret of ${RESOURCE.name}`);
  await secret.getByLabel('Username').fill('office\\sam');
  await secret.getByLabel('Password').fill('remote-desktop-password');
  await secret.getByRole('button', { name: 'Save secret' }).click();
  await row(pageA, RESOURCE.name).filter({ hasText: 'Rotate secret' }).waitFor();
  const text = await row(pageA, RESOURCE.name).innerText();
  assert(text.includes(':3389') && text.includes('Both directions'), `resource row: ${text}`);
  assert(!(await pageA.content()).includes('remote-desktop-password'), 'the password never appears');
  await row(pageA, RESOURCE.name).getByRole('button', { name: 'Edit' }).click();
  const edit = await dialog(pageA, `Edit ${RESOURCE.name}`);
  await edit.getByLabel('Pinned certificate fingerprint').fill(`sha256:${'AB'.repeat(32)}`);
  await edit.getByLabel('Port').fill('3390');
  await edit.getByRole('button', { name: 'Save' }).click();
  await row(pageA, RESOURCE.name).filter({ hasText: 'pinned' }).filter({ hasText: '3390' }).waitFor();

  // A VNC resource can be kept, but this appliance has no VNC runtime yet.
  await pageA.getByRole('button', { name: 'New resource' }).click();
  const vnc = await dialog(pageA, 'New resource');
  await vnc.getByLabel('Organization').selectOption({ label: ORG.name });
  await vnc.getByLabel('Protocol').selectOption('vnc');
  await vnc.getByLabel('Name').fill(VNC_RESOURCE.name);
  await vnc.getByLabel('Host').fill(VNC_RESOURCE.host);
  await vnc.getByRole('button', { name: 'Create resource' }).click();
  const vncSecret = await dialog(pageA, `Set the secret of ${VNC_RESOURCE.name}`);
  await vncSecret.getByRole('button', { name: 'Cancel' }).click();
  await row(pageA, VNC_RESOURCE.name).filter({ hasText: 'not available yet' }).waitFor();
  await screenshot(pageA, '06-resources');
});

const CLICK = { x: 301, y: 203 };

await step('start a session: the canvas shows the test pattern', async () => {
  await nav(pageA, 'My desktops');
  await heading(pageA, 'My desktops');
  const vncConnect = row(pageA, VNC_RESOURCE.name).getByRole('button', { name: 'Connect' });
  assert(await vncConnect.isDisabled(), 'no Connect for a protocol without a runtime');
  assert((await vncConnect.getAttribute('title')).includes('VNC sessions are not available'), 'the button says why');
  await screenshot(pageA, '07-my-desktops');
  await row(pageA, RESOURCE.name).getByRole('button', { name: 'Connect' }).click();
  await waitConnected(pageA);
  await expectPixels(pageA, 'the test pattern', [[10, 10], [100, 50], [255, 200], [300, 100], [620, 470]].map(([x, y]) => [x, y, pattern(x, y)]));
  await pageA.locator('#latency[data-ms]').waitFor();
  await screenshot(pageA, '08-viewer');
});

await step('click and type: the square and the bar appear at the remote coordinates', async () => {
  const point = await clientPoint(pageA, CLICK.x, CLICK.y);
  await pageA.mouse.move(point.x, point.y);
  await pageA.mouse.down();
  const white = [255, 255, 255, 255];
  await expectPixels(pageA, 'the white square', [
    [CLICK.x, CLICK.y, white],
    [CLICK.x + 7, CLICK.y + 7, white],
    [CLICK.x - 1, CLICK.y + 3, pattern(CLICK.x - 1, CLICK.y + 3)],
    [CLICK.x + 8, CLICK.y + 3, pattern(CLICK.x + 8, CLICK.y + 3)],
    [CLICK.x + 3, CLICK.y - 1, pattern(CLICK.x + 3, CLICK.y - 1)],
    [CLICK.x + 3, CLICK.y + 8, pattern(CLICK.x + 3, CLICK.y + 8)],
  ]);
  await screenshot(pageA, '09-viewer-click');
  await pageA.mouse.up();
  await expectPixels(pageA, 'the released (red) square', [[CLICK.x + 4, CLICK.y + 4, [255, 0, 0, 255]]]);
  assert(await pageA.evaluate(() => document.activeElement?.id === 'remote-canvas'), 'the canvas has the focus');
  await pageA.keyboard.press('KeyA');
  await expectPixels(pageA, 'the blue key bar', [[20, 1, [0, 0, 255, 255]], [600, 3, [0, 0, 255, 255]], [20, 5, pattern(20, 5)]]);
});

await step('grayscale toggle repaints in gray and back', async () => {
  await pageA.getByRole('button', { name: 'Grayscale' }).click();
  await until('a gray pixel', async () => {
    const [[r, g, b]] = await pixels(pageA, [[200, 100]]);
    return r === g && g === b;
  });
  await pageA.getByRole('button', { name: 'Grayscale' }).click();
  await expectPixels(pageA, 'colour again', [[200, 100, pattern(200, 100)]]);
});

await step('clipboard: text sent to the remote side comes back as its clipboard', async () => {
  await pageA.locator('#clipboard-panel summary').click();
  await pageA.getByLabel('Text to send to the remote desktop').fill('hello from e2e');
  await pageA.getByRole('button', { name: 'Send to remote' }).click();
  await until('the remote clipboard', async () => (await pageA.locator('#clipboard-in').inputValue()) === 'HELLO FROM E2E');
});

await step('files: a policy without uploads disables them, and a forced upload is refused by the appliance', async () => {
  // The resource was created with file transfer left at "disabled".
  await pageA.locator('#files-panel summary').click();
  await until('the policy in words', async () => (await pageA.locator('#file-policy').innerText()) === 'disabled');
  const input = pageA.getByLabel('Choose files to upload');
  assert(await input.isDisabled(), 'the file input is disabled');
  assert((await pageA.locator('#file-dropzone').getAttribute('aria-disabled')) === 'true', 'the drop zone is marked disabled');
  const note = pageA.locator('#file-upload-note');
  assert(await note.isVisible(), 'the reason is shown');
  assert((await note.innerText()).includes('File transfer is turned off for this resource.'), `upload note: ${await note.innerText()}`);
  assert(await pageA.locator('#file-download-note').isVisible(), 'the download reason is shown');
  assert(await pageA.locator('#file-downloads').isHidden(), 'no download list');
  assert((await pageA.locator('#file-where').innerText()).includes('RAPXfer\\ToClient'), 'where files go is explained');

  // A tampered page gets past the disabled input: the appliance still says no.
  await pageA.locator('#file-upload').evaluate((element) => element.removeAttribute('disabled'));
  await pageA.locator('#file-upload').setInputFiles({ name: 'forced.txt', mimeType: 'text/plain', buffer: Buffer.from('not allowed here\n') });
  const refused = pageA.locator('#file-transfers li[data-direction="upload"][data-state="refused"]', { hasText: 'forced.txt' });
  await refused.waitFor();
  const alert = refused.locator('[role=alert]');
  assert((await alert.getAttribute('data-message-key')) === 'event.policy_denied', `refusal key: ${await alert.getAttribute('data-message-key')}`);
  assert((await alert.innerText()).includes('policy does not allow uploading files'), `refusal text: ${await alert.innerText()}`);
  assert((await refused.locator('.transfer-state').innerText()) === 'Refused', 'the row says refused');
  await screenshot(pageA, '09b-files-refused');

  // A download forced over the viewer's socket is refused too, and said so.
  await pageA.evaluate(() =>
    document.getElementById('viewer').rapViewer.send('file_download.start', { transfer_id: crypto.randomUUID(), file_name: 'anything.txt' }),
  );
  const notice = pageA.locator('#viewer-notices [data-code="policy_denied"]');
  await notice.waitFor();
  assert((await notice.innerText()).includes('policy does not allow downloading files'), `download refusal: ${await notice.innerText()}`);
  await notice.getByRole('button', { name: 'Dismiss' }).click();
  await pageA.evaluate(() => document.getElementById('viewer').rapViewer.updateButtons());
  assert(await input.isDisabled(), 'the file input is disabled again');
  await pageA.locator('#files-panel summary').click();
});

await step('a dropped socket reconnects by itself', async () => {
  await pageA.evaluate(() => document.getElementById('viewer').rapViewer.socket.close(4000, 'test'));
  await until('reconnecting', async () => ['reconnecting', 'connecting'].includes(await viewerState(pageA)), 5_000);
  await waitConnected(pageA);
  await expectPixels(pageA, 'the square still there', [[CLICK.x + 4, CLICK.y + 4, [255, 0, 0, 255]], [400, 300, pattern(400, 300)]]);
});

await step('a socket that floods is cut (4429) and reconnects after a while, saying why', async () => {
  await pageA.evaluate(() => {
    const viewer = document.getElementById('viewer').rapViewer;
    for (let i = 0; i < 20_000 && viewer.send('ping'); i += 1);
  });
  await until('the rate-limit countdown', async () => /^Too many messages sent; reconnecting in \d+ s…$/.test(await pageA.locator('#connection-state').innerText()), 10_000);
  const notice = pageA.locator('#viewer-notices [data-code="rate_limited"]');
  await notice.waitFor();
  assert((await notice.getAttribute('data-reason')) === 'socket_messages', `reason: ${await notice.getAttribute('data-reason')}`);
  await screenshot(pageA, '09c-rate-limited');
  await waitConnected(pageA);
  await notice.getByRole('button', { name: 'Dismiss' }).click();
});

await step('detach and resume', async () => {
  await pageA.getByRole('button', { name: 'Detach' }).click();
  await heading(pageA, 'My desktops');
  const session = pageA.locator('#my-sessions tbody tr', { hasText: RESOURCE.name });
  await session.filter({ hasText: 'detached' }).waitFor();
  await screenshot(pageA, '10-my-sessions');
  await session.getByRole('button', { name: 'Resume' }).click();
  await waitConnected(pageA);
  // The desktop stayed up: the marks from before are still on it.
  await expectPixels(pageA, 'the desktop as it was', [[CLICK.x + 4, CLICK.y + 4, [255, 0, 0, 255]], [20, 1, [0, 0, 255, 255]], [500, 400, pattern(500, 400)]]);
});

await step('admin pages: live sessions, workers, audit log, installation', async () => {
  const sessionId = await pageA.locator('#viewer').getAttribute('data-session-id');
  await nav(pageA, 'Sessions');
  await heading(pageA, 'Live sessions');
  // Leaving the viewer closed its socket: the session is detached now.
  const live = row(pageA, RESOURCE.name);
  await live.waitFor();
  await screenshot(pageA, '11-sessions');
  await nav(pageA, 'Workers');
  await heading(pageA, 'Workers');
  await pageA.locator('#workers tbody tr').first().waitFor();
  await screenshot(pageA, '12-workers');
  await nav(pageA, 'Audit log');
  await heading(pageA, 'Audit log');
  await pageA.getByLabel('Session').fill(sessionId);
  await pageA.getByRole('button', { name: 'Apply' }).click();
  await pageA.locator('#audit tbody tr', { hasText: 'session.created' }).waitFor();
  await screenshot(pageA, '13-audit');
  await nav(pageA, 'Installation');
  await heading(pageA, 'Installation');
  const facts = await pageA.locator('#installation-facts').innerText();
  assert(facts.includes('legacy') && facts.includes('development'), `installation facts: ${facts}`);
  await trust.expectInstallationTrust(pageA, TLS, CA);
  await screenshot(pageA, '14-installation');
  await pageA.locator('#installation-trust').scrollIntoViewIfNeeded();
  await screenshot(pageA, '14b-installation-trust');
  // Back to the desktop.
  await nav(pageA, 'My desktops');
  await pageA.locator('#my-sessions tbody tr', { hasText: RESOURCE.name }).getByRole('button', { name: 'Resume' }).click();
  await waitConnected(pageA);
});

await step('takeover from a second browser: the first is disconnected, shows the notice and takes control back', async () => {
  pageB = await lib.openPage(browser, { width: 1280, height: 860 }, 'B');
  await signIn(pageB, OWNER, 'E2E second browser');
  await pageB.locator('#my-sessions tbody tr', { hasText: RESOURCE.name }).getByRole('button', { name: 'Take over' }).click();
  await waitConnected(pageB);
  await expectPixels(pageB, 'the same desktop in the second browser', [[CLICK.x + 4, CLICK.y + 4, [255, 0, 0, 255]], [123, 321, pattern(123, 321)]]);
  await lib.expectTakenOver(pageA);

  // The second browser draws; the first receives no more frames.
  const frames = await pageA.locator('#remote-canvas').getAttribute('data-frames');
  const point = await clientPoint(pageB, 700, 500);
  await pageB.mouse.move(point.x, point.y);
  await pageB.mouse.down();
  await expectPixels(pageB, 'the second browser’s click', [[702, 502, [255, 255, 255, 255]]]);
  await pageB.mouse.up();
  await sleep(1_000);
  assert((await pageA.locator('#remote-canvas').getAttribute('data-frames')) === frames, 'no frames reach the first browser');
  assert((await viewerState(pageA)) === 'idle', 'the first browser did not reconnect by itself');
  await screenshot(pageA, '15-taken-over');

  await pageA.getByRole('button', { name: 'Take back control' }).click();
  await waitConnected(pageA);
  await expectPixels(pageA, 'the desktop with the second browser’s click', [[704, 504, [255, 0, 0, 255]]]);
  assert((await pageA.locator('#taken-over').count()) === 0, 'the notice is gone');
  await lib.expectTakenOver(pageB);
});

await step('shadow from the sessions page: read-only, and the controller sees the viewer count', async () => {
  await nav(pageB, 'Sessions');
  await heading(pageB, 'Live sessions');
  const live = row(pageB, RESOURCE.name);
  await until('the controller in the sessions list', async () => (await live.innerText()).includes('since'));
  await live.getByRole('button', { name: 'Shadow' }).click();
  await waitConnected(pageB, 'viewing');
  await pageB.getByText('Read-only', { exact: true }).waitFor();
  await until('the viewer count', async () => /1 watching/.test(await pageA.locator('#viewers').innerText()));
  await screenshot(pageB, '16-shadow');
  await screenshot(pageA, '17-viewer-watched');
});

await step('resize the remote desktop to the window', async () => {
  await pageA.setViewportSize({ width: 1100, height: 760 });
  const before = await pageA.evaluate(() => [document.getElementById('remote-canvas').width, document.getElementById('remote-canvas').height]);
  // The size the button asks for is the stage's when it is clicked: wait
  // for the page to settle at the new viewport first (the status line can
  // still be changing what wraps).
  const stageSize = () =>
    pageA.evaluate(() => {
      const stage = document.getElementById('viewer-stage');
      return [Math.floor(stage.clientWidth / 2) * 2, Math.floor(stage.clientHeight / 2) * 2];
    });
  let want = await stageSize();
  await until('the stage to keep its size', async () => {
    await sleep(300);
    const now = await stageSize();
    const steady = now[0] === want[0] && now[1] === want[1];
    want = now;
    return steady;
  });
  await pageA.getByRole('button', { name: 'Resize remote to window' }).click();
  assert(want[0] !== before[0] || want[1] !== before[1], `the stage is still ${want}`);
  await until('the new remote size', () =>
    pageA.evaluate(([w, h]) => {
      const canvas = document.getElementById('remote-canvas');
      return canvas.width === w && canvas.height === h;
    }, want),
  );
  const [w, h] = want;
  await expectPixels(pageA, 'the pattern at the new size', [[w - 3, h - 3, pattern(w - 3, h - 3)], [CLICK.x + 4, CLICK.y + 4, pattern(CLICK.x + 4, CLICK.y + 4)]]);
});

await step('terminate: the session ends for every viewer', async () => {
  await pageA.getByRole('button', { name: 'Terminate' }).click();
  const confirm = pageA.getByRole('alertdialog');
  await confirm.getByRole('button', { name: 'Terminate' }).click();
  await heading(pageA, 'My desktops');
  await until('the shadow viewer ends', async () => (await viewerState(pageB)) === 'ended');
  await pageB.locator('#viewer-notices [data-message-key="event.session_ended"]').waitFor();
  await until('no open session', async () => (await pageA.locator('#my-sessions tbody tr', { hasText: RESOURCE.name }).count()) === 0);
});

// A moving picture on a host without H.264 (e2e-motion.mjs).
await motionSteps({ step, screenshot, page: pageA, organization: ORG.name });

await step('files: upload (two files, one after another) and download on a resource that allows both', async () => {
  assert(DATA_DIR, 'set RAP_DATA_DIR to the appliance’s data directory (run.sh does)');
  await nav(pageA, 'Resources');
  await heading(pageA, 'Resources');
  await pageA.getByRole('button', { name: 'New resource' }).click();
  const form = await dialog(pageA, 'New resource');
  await form.getByLabel('Organization').selectOption({ label: ORG.name });
  await form.getByLabel('Name').fill(FILES_RESOURCE.name);
  await form.getByLabel('Host').fill(FILES_RESOURCE.host);
  await form.getByLabel('File transfer').selectOption('bidirectional');
  await form.getByRole('button', { name: 'Create resource' }).click();
  const secret = await dialog(pageA, `Set the secret of ${FILES_RESOURCE.name}`);
  await secret.getByLabel('Username').fill('files\\sam');
  await secret.getByLabel('Password').fill('files-desktop-password');
  await secret.getByRole('button', { name: 'Save secret' }).click();
  await row(pageA, FILES_RESOURCE.name).filter({ hasText: 'Rotate secret' }).waitFor();

  await nav(pageA, 'My desktops');
  await heading(pageA, 'My desktops');
  await row(pageA, FILES_RESOURCE.name).getByRole('button', { name: 'Connect' }).click();
  await waitConnected(pageA);
  const sessionId = await pageA.locator('#viewer').getAttribute('data-session-id');
  const folder = path.join(DATA_DIR, 'transfers', sessionId);

  await pageA.locator('#files-panel summary').click();
  await until('the policy in words', async () => (await pageA.locator('#file-policy').innerText()) === 'both directions');
  const input = pageA.getByLabel('Choose files to upload');
  await until('the file input enabled', () => input.isEnabled());
  assert(await pageA.locator('#file-upload-note').isHidden(), 'no reason shown when uploads are allowed');
  await pageA.locator('#file-downloads li', { hasText: 'Nothing to download yet.' }).waitFor();

  // Two files at once: a small text and one of several chunks (256 KiB each).
  const hello = Buffer.from('Hello, remote desktop! Grüße aus dem Browser.\n');
  const bulk = randomBytes(600 * 1024 + 123);
  await input.setInputFiles([
    { name: 'hello.txt', mimeType: 'text/plain', buffer: hello },
    { name: 'bulk.bin', mimeType: 'application/octet-stream', buffer: bulk },
  ]);
  const uploaded = (name) => pageA.locator('#file-transfers li[data-direction="upload"][data-state="completed"]', { hasText: name });
  await uploaded('hello.txt').waitFor();
  await uploaded('bulk.bin').waitFor();
  const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');
  assert((await uploaded('bulk.bin').getAttribute('data-sha256')) === sha(bulk), 'the appliance hashed the same bytes');
  assert((await readFile(path.join(folder, 'hello.txt'))).equals(hello), 'hello.txt on disk is what was sent');
  assert((await readFile(path.join(folder, 'bulk.bin'))).equals(bulk), 'bulk.bin on disk is what was sent');
  const label = await uploaded('bulk.bin').locator('progress').getAttribute('aria-label');
  assert(label === 'Upload of bulk.bin', `progress label: ${label}`);

  // The same name again is kept beside the first, under a new name.
  await input.setInputFiles({ name: 'hello.txt', mimeType: 'text/plain', buffer: Buffer.from('second\n') });
  await pageA.locator('#file-transfers li[data-state="completed"]', { hasText: 'saved as hello (1).txt' }).waitFor();
  assert((await readFile(path.join(folder, 'hello (1).txt'), 'utf8')) === 'second\n', 'the second hello.txt on disk');

  // Dropped on the drop zone: a file larger than 25 MiB is refused before
  // a byte goes out, the small one beside it goes.
  await pageA.locator('#file-dropzone').evaluate((zone) => {
    const files = new DataTransfer();
    files.items.add(new File([new Uint8Array(25 * 1024 * 1024 + 1)], 'huge.bin'));
    files.items.add(new File(['dropped\n'], 'dropped.txt', { type: 'text/plain' }));
    zone.dispatchEvent(new DragEvent('dragenter', { dataTransfer: files, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: files, bubbles: true, cancelable: true }));
  });
  await uploaded('dropped.txt').waitFor();
  assert((await readFile(path.join(folder, 'dropped.txt'), 'utf8')) === 'dropped\n', 'the dropped file on disk');
  const huge = pageA.locator('#file-transfers li[data-state="refused"]', { hasText: 'huge.bin' });
  await huge.waitFor();
  assert((await huge.locator('[role=alert]').innerText()).includes('is larger than 25 MiB'), 'the size refusal is explained');

  // Cancel, from the keyboard, an upload held after its start.
  await pageA.evaluate(() => {
    const { files } = document.getElementById('viewer').rapViewer;
    files.heldSendChunk = files.sendChunk;
    files.sendChunk = () => {};
  });
  await input.setInputFiles({ name: 'cancelled.bin', mimeType: 'application/octet-stream', buffer: randomBytes(300_000) });
  const cancelling = pageA.locator('#file-transfers li[data-state="uploading"]', { hasText: 'cancelled.bin' });
  await cancelling.waitFor();
  // Uploads in progress wait in transfers/.parts, off the remote desktop's drive.
  const partFiles = async () =>
    (await readdir(path.join(path.dirname(folder), '.parts')).catch(() => [])).filter((name) => name.startsWith(`${path.basename(folder)}-`));
  await until('the part file', async () => (await partFiles()).length > 0);
  assert(!(await readdir(folder)).some((name) => name.startsWith('.')), 'no part file on the drive');
  await cancelling.getByRole('button', { name: 'Cancel the upload of cancelled.bin' }).focus();
  await pageA.keyboard.press('Enter');
  await pageA.locator('#file-transfers li[data-state="cancelled"]', { hasText: 'cancelled.bin' }).waitFor();
  await pageA.evaluate(() => {
    const { files } = document.getElementById('viewer').rapViewer;
    files.sendChunk = files.heldSendChunk;
  });
  await until('the part file gone', async () => (await partFiles()).length === 0);
  assert(!(await readdir(folder)).includes('cancelled.bin'), 'nothing under the cancelled name');

  // The remote user saves files into ToClient: they are offered, and download.
  const report = Buffer.from('Quarterly report\nline two\n');
  const big = randomBytes(1_300_000);
  await writeFile(path.join(folder, 'ToClient', 'report.txt'), report);
  await writeFile(path.join(folder, 'ToClient', 'big.bin'), big);
  for (const [name, content] of [['report.txt', report], ['big.bin', big]]) {
    const offered = pageA.locator('#file-downloads li', { hasText: name });
    await offered.waitFor();
    const [download] = await Promise.all([pageA.waitForEvent('download'), offered.getByRole('button', { name: `Download ${name}` }).click()]);
    assert(download.suggestedFilename() === name, `downloaded as ${download.suggestedFilename()}`);
    const got = await readFile(await download.path());
    assert(got.equals(content), `${name}: ${got.length} bytes downloaded, expected ${content.length}`);
    await pageA.locator('#file-transfers li[data-direction="download"][data-state="completed"]', { hasText: name }).waitFor();
  }
  assert((await pageA.locator('#file-downloads li', { hasText: 'big.bin' }).innerText()).includes('1.2 MiB'), 'sizes for people');
  await pageA.evaluate(() => document.getElementById('toasts').replaceChildren());
  await pageA.locator('#files-panel').scrollIntoViewIfNeeded();
  await screenshot(pageA, '18-files');
  // The whole panel (an open panel scrolls inside the viewer).
  await pageA.locator('#files-panel').evaluate((panel) => (panel.style.maxHeight = 'none'));
  await pageA.locator('#files-panel').screenshot({ path: path.join(ARTIFACTS, '19-files-panel.png') });
  shots.push(path.join(ARTIFACTS, '19-files-panel.png'));
  await pageA.locator('#files-panel').evaluate((panel) => (panel.style.maxHeight = ''));
});

await step('files: after a takeover the panel is read-only; the folder goes with the session', async () => {
  const sessionId = await pageA.locator('#viewer').getAttribute('data-session-id');
  await pageB.goto(`${BASE}/#/`);
  await heading(pageB, 'My desktops');
  await pageB.locator('#my-sessions tbody tr', { hasText: FILES_RESOURCE.name }).getByRole('button', { name: 'Take over' }).click();
  await waitConnected(pageB);
  await lib.expectTakenOver(pageA);
  await until('the file input disabled', () => pageA.getByLabel('Choose files to upload').isDisabled());
  assert((await pageA.locator('#file-upload-note').innerText()).includes('read-only'), 'the read-only reason is shown');
  assert(await pageA.locator('#file-downloads').isHidden(), 'no download list for a viewer');
  // The new controller is offered what is in ToClient.
  await pageB.locator('#files-panel summary').click();
  await pageB.locator('#file-downloads li', { hasText: 'report.txt' }).waitFor();

  await pageB.getByRole('button', { name: 'Terminate' }).click();
  await pageB.getByRole('alertdialog').getByRole('button', { name: 'Terminate' }).click();
  await heading(pageB, 'My desktops');
  const folder = path.join(DATA_DIR, 'transfers', sessionId);
  await until('the transfer folder removed', () => access(folder).then(() => false, () => true));
  // The first browser's socket is closed: it learns of the end when it tries to take the session back.
  await pageA.getByRole('button', { name: 'Take back control' }).click();
  await pageA.locator('#session-ended').waitFor();
  await until('the viewer ended', async () => (await viewerState(pageA)) === 'ended');
  assert((await pageA.locator('#taken-over').count()) === 0, 'nothing left to take back');
});

// An open viewer lasts only as long as the right to it (e2e-access.mjs).
await revocation.revocationSteps({ step, screenshot, pageA, pageB, users: { STAFF }, ORG, RESOURCE, signIn });

await step('sign out', async () => {
  await pageA.getByRole('button', { name: 'Sign out' }).click();
  await heading(pageA, 'Sign in');
  assert(await pageA.evaluate(() => localStorage.getItem('rap.auth') === null), 'tokens forgotten');
});

await finish(browser);
