// @ts-check
// The console's entry point (index.html loads it): the hash router, the
// page shell (navigation, account menu), sign-in and the staff view. The
// first run lives in setup.js, admin pages in admin.js, the viewer in viewer.js;
// what they share with this module (navigation, the signed-in session,
// session helpers) lives in nav.js, session.js and sessions.js.

import * as api from './api.js';
import { h, setChildren, buildForm, section, table, actionButton, loadInto, timeCell, badge, toast, confirmDialog, errorBox } from './ui.js';
import { verifyLine } from './trust-view.js';
import { go, currentRoute, onRedraw } from './nav.js';
import { state, session } from './session.js';
import { canStart, unsupportedWhy, protocolCell, stateCell, withControllers, connect, resume, inDesktopApp, connectInWindow, resumeInWindow, renewWindow } from './sessions.js';
import { adminRoutes } from './admin.js';
import { setupPage } from './setup.js';
import { viewerPage } from './viewer.js';

// ----------------------------------------------------------------- routing

/** @type {import('./nav.js').PageRoute[]} */
const routes = [
  { pattern: /^\/setup$/, page: setupPage, title: 'Set up', public: true },
  { pattern: /^\/login$/, page: loginPage, title: 'Sign in', public: true },
  { pattern: /^\/$/, page: homePage, title: 'My desktops', nav: 'My desktops' },
  { pattern: /^\/viewer\/([0-9a-fA-F-]{36})$/, page: viewerPage, title: 'Remote desktop', wide: true },
  ...adminRoutes,
];

let cleanup = null;
let renderCount = 0;

async function render() {
  const count = ++renderCount;
  const main = document.getElementById('main');
  if (typeof cleanup === 'function') {
    try {
      cleanup();
    } catch {
      /* a page's cleanup must not block navigation */
    }
  }
  cleanup = null;
  const { path, params } = currentRoute();

  try {
    if (!state.installation) state.installation = await api.api('GET', '/installation', { auth: false }).catch(() => null);
    if (state.installation && !state.installation.bootstrapped) {
      if (path !== '/setup') return go('/setup');
    } else if (path === '/setup') {
      return go('/login');
    }
    const signedIn = Boolean(api.currentAuth());
    const route = routes.find((candidate) => candidate.pattern.test(path));
    if (!route) {
      renderShell();
      setChildren(main, h('h1', { tabindex: '-1', text: 'Page not found' }), h('p', {}, h('a', { href: '#/', text: 'Back to my desktops' })));
      return;
    }
    if (!route.public && !signedIn) {
      sessionStorage.setItem('rap.return', path + (params.toString() ? `?${params}` : ''));
      return go('/login');
    }
    if (route.public && signedIn && path === '/login') return go('/');
    if (signedIn && !state.me) state.me = await api.get('/auth/me');
    if (count !== renderCount) return;

    renderShell();
    document.title = `${route.title} · RAP Appliance`;
    main.className = route.wide ? 'wide' : '';
    document.body.classList.toggle('fill', Boolean(route.wide));
    main.dataset.page = route.title;
    setChildren(main, h('p', { class: 'muted', role: 'status', text: 'Loading…' }));
    if (route.requires === 'admin' && !session.canAdminister) return forbidden(main);
    if (route.requires === 'platform' && !session.isPlatformAdmin) return forbidden(main);
    const match = path.match(route.pattern);
    cleanup = await route.page(main, { params, match, path });
    if (count !== renderCount && typeof cleanup === 'function') cleanup();
    focusHeading(main);
  } catch (error) {
    if (count !== renderCount) return;
    renderShell();
    setChildren(main, h('h1', { tabindex: '-1', text: 'Something went wrong' }), errorBox(error), h('p', {}, h('button', { type: 'button', onclick: () => render(), text: 'Try again' })));
  }
}

function forbidden(main) {
  setChildren(main, h('h1', { tabindex: '-1', text: 'Not allowed' }), h('p', { text: 'Your account cannot open this page.' }));
}

function focusHeading(main) {
  const heading = main.querySelector('h1');
  if (heading && !main.contains(document.activeElement)) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

function renderShell() {
  const nav = document.getElementById('nav');
  const account = document.getElementById('account');
  const signedIn = Boolean(api.currentAuth()) && state.me;
  if (!signedIn) {
    setChildren(nav);
    setChildren(account);
    return;
  }
  const { path } = currentRoute();
  const link = (href, label) =>
    h('a', { href: `#${href}`, 'aria-current': path === href || (href !== '/' && path.startsWith(`${href}/`)) ? 'page' : null, text: label });
  const items = [link('/', 'My desktops')];
  for (const adminRoute of adminRoutes) {
    if (!adminRoute.nav) continue;
    if (adminRoute.requires === 'platform' && !session.isPlatformAdmin) continue;
    if (adminRoute.requires === 'admin' && !session.canAdminister) continue;
    items.push(link(adminRoute.href, adminRoute.nav));
  }
  setChildren(nav, h('ul', {}, items.map((item) => h('li', {}, item))));
  const user = state.me.user;
  setChildren(
    account,
    h('span', { class: 'who', title: user.email }, user.display_name || user.email, session.isPlatformAdmin ? badge('admin', 'admin') : null),
    h('button', { type: 'button', class: 'secondary small', id: 'logout', text: 'Sign out', onclick: signOut }),
  );
}

async function signOut() {
  state.me = null;
  state.loginNotice = { text: 'You have signed out.', kind: 'info' };
  await api.logout(); // the auth listener below moves to the sign-in page
  if (currentRoute().path !== '/login') go('/login');
}

api.onAuthChange((tokens, reason) => {
  if (tokens) return;
  state.me = null;
  if (reason === 'expired') state.loginNotice = { text: 'Your sign-in has ended. Please sign in again.', kind: 'warn' };
  else if (!state.loginNotice) state.loginNotice = { text: 'You have signed out.', kind: 'info' };
  const { path } = currentRoute();
  if (path !== '/login' && path !== '/setup') {
    sessionStorage.setItem('rap.return', path);
    go('/login');
  }
});

window.addEventListener('hashchange', render);
// The desktop app tells the console why a desktop did not open in a window.
if (inDesktopApp()) window.addEventListener('rap-desktop-notice', (event) => toast(String(/** @type {CustomEvent} */ (event).detail), 'warn'));
// A native window asks this console for a fresh token (reconnect, take back control).
if (inDesktopApp()) window.addEventListener('rap-desktop-renew', (event) => renewWindow(/** @type {CustomEvent} */ (event).detail ?? {}));
onRedraw(render);

// ----------------------------------------------------------------- sign-in

async function loginPage(main) {
  const device = api.rememberedDevice();
  const notice = state.loginNotice;
  state.loginNotice = null;
  const form = buildForm({
    name: 'Sign in',
    submitLabel: 'Sign in',
    fields: [
      { name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'username' },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password' },
      { name: 'device_name', label: 'Device name', value: device.name, hint: 'Shown in your list of devices; remembered on this browser.' },
    ],
    fieldFor: (path) => (path.startsWith('device') ? 'device_name' : path),
    submit: async (values) => {
      await api.login(values.email.trim(), values.password, values.device_name);
      state.me = await api.get('/auth/me');
      const back = sessionStorage.getItem('rap.return');
      sessionStorage.removeItem('rap.return');
      go(back && back !== '/login' ? back : '/');
    },
  });
  setChildren(
    main,
    h(
      'div',
      { class: 'narrow' },
      h('h1', { text: 'Sign in' }),
      notice ? h('p', { class: `alert alert-${notice.kind}`, role: 'status', text: notice.text }) : null,
      form,
      verifyLine(state.installation?.tls),
    ),
  );
}

// --------------------------------------------------------------- staff view

/** Whether a session can be opened again (it has a desktop to show). */
const resumable = (s) => s.state === 'detached' || s.state === 'active' || s.state === 'starting';

async function homePage(main) {
  const resourcesSlot = h('div', { id: 'my-resources' });
  const sessionsSlot = h('div', { id: 'my-sessions' });
  const errorSlot = h('div', { class: 'page-error' });
  let resources = [];
  const organizations = new Map((state.me.memberships ?? []).map((m) => [m.organization_id, m.organization_name]));

  const run = (task) => async (event) => {
    const button = event?.currentTarget;
    if (button) button.disabled = true;
    errorSlot.replaceChildren();
    try {
      await task();
    } catch (error) {
      setChildren(errorSlot, errorBox(error));
      errorSlot.scrollIntoView({ block: 'nearest' });
    } finally {
      if (button?.isConnected) button.disabled = false;
    }
  };

  const loadResources = () =>
    loadInto(
      resourcesSlot,
      async () => (resources = await api.getAll('/resources')),
      (items) =>
        table(
          'Resources you can open',
          [
            { label: 'Name', cell: (r) => h('strong', { text: r.name }) },
            { label: 'Protocol', cell: (r) => protocolCell(r) },
            { label: 'Host', cell: (r) => `${r.host}:${r.port}` },
            { label: 'Organization', cell: (r) => organizations.get(r.organization_id) ?? '—' },
            {
              label: 'Actions',
              class: 'actions',
              cell: (r) =>
                canStart(r)
                  ? [
                      actionButton('Connect', run(() => connect(r.id)), { kind: 'primary', title: `Connect to ${r.name}` }),
                      inDesktopApp()
                        ? actionButton(
                            'Open in window',
                            // The new session shows below at once, to resume or take over.
                            run(async () => {
                              await connectInWindow(r.id, r.name);
                              await loadSessions();
                            }),
                            { title: `Connect to ${r.name} in its own window` },
                          )
                        : null,
                    ]
                  : actionButton('Connect', null, { kind: 'primary', disabled: true, title: unsupportedWhy(r) }),
            },
          ],
          items,
          'No resources are shared with you yet.',
        ),
    );

  const loadSessions = () =>
    loadInto(
      sessionsSlot,
      async () => withControllers((await api.getAll('/sessions', { state: 'pending,starting,active,detached' }, 2)).filter((s) => s.owner_user_id === session.userId)),
      (items) =>
        table(
          'Your sessions',
          [
            { label: 'State', cell: (s) => stateCell(s) },
            { label: 'Resource', cell: (s) => resources.find((r) => r.id === s.resource_id)?.name ?? s.resource_id },
            { label: 'Started', cell: (s) => timeCell(s.created_at) },
            { label: 'In use', cell: (s) => (s.controller ? (s.controller.device_id && s.controller.device_id === session.deviceId ? 'this device' : 'another device') : 'no') },
            {
              label: 'Actions',
              class: 'actions',
              cell: (s) => [
                resumable(s)
                  ? actionButton('Resume', run(() => resume(s.id, 'attach')), { kind: 'primary', title: `Resume session ${s.id}` })
                  : null,
                inDesktopApp() && resumable(s)
                  ? actionButton(
                      'Open in window',
                      run(async () => {
                        await resumeInWindow(s.id, resources.find((r) => r.id === s.resource_id)?.name ?? 'Remote desktop', s.controller ? 'takeover' : 'attach');
                        await loadSessions();
                      }),
                      { title: `Resume session ${s.id} in its own window` },
                    )
                  : null,
                s.state === 'active'
                  ? actionButton('Take over', run(() => resume(s.id, 'takeover')), { title: `Take over session ${s.id}` })
                  : null,
                actionButton(
                  'Terminate',
                  run(async () => {
                    if (!(await confirmDialog('Terminate this session? The remote desktop will be closed.', 'Terminate'))) return;
                    await api.post(`/sessions/${s.id}/terminate`);
                    toast('Session terminated.');
                    await loadSessions();
                  }),
                  { kind: 'danger', title: `Terminate session ${s.id}` },
                ),
              ],
            },
          ],
          items,
          'You have no open sessions.',
        ),
    );

  setChildren(
    main,
    h('h1', { text: 'My desktops' }),
    errorSlot,
    section('Resources you can open', actionButton('Refresh', () => loadResources()), resourcesSlot),
    section('Your sessions', actionButton('Refresh', () => loadSessions()), sessionsSlot),
  );
  await loadResources();
  await loadSessions();
  const timer = setInterval(() => {
    if (!sessionsSlot.contains(document.activeElement) && !document.querySelector('dialog[open]')) loadSessions();
  }, 10_000);
  return () => clearInterval(timer);
}

render();
