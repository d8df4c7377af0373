// e2e.mjs's steps for an open viewer whose right to the session ends:
// its user disabled by an administrator (the viewer closes and the
// browser goes to sign-in, saying why; enabled again, signing in leads
// back to the desktop), and its user removed from the organization (the
// viewer closes and says so, without reconnecting). Run after the steps
// that made STAFF a member of ORG, which holds RESOURCE.

import { assert, until, sleep, heading, nav, row, viewerState, waitConnected, expectPixels } from './lib.mjs';

export async function revocationSteps({ step, screenshot, pageA, pageB, users: { STAFF }, ORG, RESOURCE, signIn }) {
  await step('disabling a user closes their open viewer and sends them to sign-in; enabling lets them back', async () => {
    await pageB.getByRole('button', { name: 'Sign out' }).click();
    await signIn(pageB, STAFF, 'Staff laptop');
    await row(pageB, RESOURCE.name).getByRole('button', { name: 'Connect' }).click();
    await waitConnected(pageB);

    await nav(pageA, 'Users');
    await heading(pageA, 'Users');
    await row(pageA, STAFF.email).getByRole('button', { name: 'Disable' }).click();
    const confirm = pageA.getByRole('alertdialog');
    assert((await confirm.innerText()).includes('their open connections are closed'), `the question: ${await confirm.innerText()}`);
    await confirm.getByRole('button', { name: 'Disable' }).click();
    await row(pageA, STAFF.email).getByRole('button', { name: 'Enable' }).waitFor();
    assert((await row(pageA, STAFF.email).innerText()).includes('disabled'), 'the row says disabled');

    await heading(pageB, 'Sign in');
    const why = pageB.locator('main .alert', { hasText: 'Your account was disabled' });
    await why.waitFor();
    assert(await pageB.evaluate(() => localStorage.getItem('rap.auth') === null), 'the dead sign-in is forgotten');
    await pageA.evaluate(() => document.getElementById('toasts').replaceChildren());
    await screenshot(pageA, '20-users-disabled');
    await screenshot(pageB, '21-access-revoked');

    await row(pageA, STAFF.email).getByRole('button', { name: 'Enable' }).click();
    await row(pageA, STAFF.email).getByRole('button', { name: 'Disable' }).waitFor();
    // Signing in again leads back to the desktop that was open.
    await pageB.getByLabel('Email').fill(STAFF.email);
    await pageB.getByLabel('Password').fill(STAFF.password);
    await pageB.getByRole('button', { name: 'Sign in' }).click();
    await waitConnected(pageB);
  });

  await step('removing a member from the organization closes their viewer for good, saying why', async () => {
    await nav(pageA, 'Organizations');
    await row(pageA, ORG.name).getByRole('link', { name: ORG.name }).click();
    await heading(pageA, ORG.name);
    await pageA.locator('#members tbody tr', { hasText: STAFF.email }).getByRole('button', { name: /^Remove/ }).click();
    await pageA.getByRole('alertdialog').getByRole('button', { name: 'Remove' }).click();
    await until('the member gone', async () => (await pageA.locator('#members tbody tr', { hasText: STAFF.email }).count()) === 0);

    const notice = pageB.locator('#access-revoked');
    await notice.waitFor();
    assert((await notice.getAttribute('data-reason')) === 'access_removed', `reason: ${await notice.getAttribute('data-reason')}`);
    assert((await notice.innerText()).includes('no longer have access to this session'), `notice: ${await notice.innerText()}`);
    await notice.getByRole('link', { name: 'Back to my desktops' }).waitFor();
    assert((await viewerState(pageB)) === 'error' && (await pageB.locator('#connection-state').innerText()) === 'Access ended', 'the state says so');
    await expectPixels(pageB, 'the desktop wiped', [[10, 10, [0, 0, 0, 255]], [300, 200, [0, 0, 0, 255]]]);
    await sleep(1_500);
    assert((await viewerState(pageB)) === 'error', 'no reconnect');
    await screenshot(pageB, '22-access-removed');
  });
}
