// @ts-check
// The admin console's installation page: the installation's facts and
// health, how it serves HTTPS with the way to trust its CA, and the
// signed-in account.

import * as api from './api.js';
import { h, setChildren, section, badge, humanize } from './ui.js';
import { session } from './session.js';
import { roleLabel } from './admin-common.js';
import { tlsFacts, trustHelp } from './trust-view.js';

/** @param {HTMLElement} main */
export async function installationPage(main) {
  const installation = await api.get('/installation');
  const probe = async (path) => {
    try {
      const response = await fetch(path, { cache: 'no-store' });
      return response.ok ? badge('ok', 'active') : badge(`HTTP ${response.status}`, 'failed');
    } catch {
      return badge('unreachable', 'failed');
    }
  };
  const [healthz, readyz] = await Promise.all([probe('/healthz'), probe('/readyz')]);
  const me = session.me;
  const trust = section('HTTPS and trust', null, h('dl', { class: 'facts', id: 'tls-facts' }, tlsFacts(installation.tls)), trustHelp(installation.tls));
  trust.id = 'installation-trust';
  setChildren(
    main,
    h('h1', { text: 'Installation' }),
    section(
      'Status',
      null,
      h(
        'dl',
        { class: 'facts', id: 'installation-facts' },
        h('dt', { text: 'Installation ID' }),
        h('dd', {}, h('code', { text: installation.installation_id })),
        h('dt', { text: 'Bootstrapped' }),
        h('dd', { text: installation.bootstrapped ? 'yes' : 'no' }),
        h('dt', { text: 'Authority mode' }),
        h('dd', { text: installation.authority_mode }),
        h('dt', { text: 'Environment' }),
        h('dd', { text: installation.app_env }),
        h('dt', { text: 'Process' }),
        h('dd', {}, healthz),
        h('dt', { text: 'Database' }),
        h('dd', {}, readyz),
      ),
    ),
    trust,
    section(
      'Your account',
      null,
      h(
        'dl',
        { class: 'facts' },
        h('dt', { text: 'User' }),
        h('dd', { text: `${me.user.display_name} <${me.user.email}>` }),
        h('dt', { text: 'Platform role' }),
        h('dd', { text: me.platform_role ? humanize(me.platform_role) : 'none' }),
        h('dt', { text: 'Memberships' }),
        h('dd', {}, me.memberships.length ? h('ul', { class: 'plain' }, me.memberships.map((m) => h('li', {}, h('a', { href: `#/admin/organizations/${m.organization_id}`, text: m.organization_name }), ` — ${roleLabel(m.role)} (${m.status})`))) : 'none'),
        h('dt', { text: 'This device' }),
        h('dd', { text: api.currentAuth()?.device?.name ?? '—' }),
      ),
    ),
  );
}
