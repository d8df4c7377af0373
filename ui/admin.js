// @ts-check
// The admin console: its routes, and the pages for organizations with
// their members and identity sources, live sessions, workers and the
// audit log. Users, resources and the installation have modules of their
// own (admin-users.js, admin-resources.js, admin-installation.js); what
// the pages share is in admin-common.js.

import * as api from './api.js';
import { h, setChildren, section, table, actionButton, formDialog, confirmDialog, timeCell, idCell, badge, toast, loadInto, shortId } from './ui.js';
import { go } from './nav.js';
import { session, refreshMe } from './session.js';
import { resume, withControllers, stateCell } from './sessions.js';
import { ROLES, roleLabel, loadOrganizations, manageable, loadUsers, userCell, pagedList, guarded, organizationOptions, filterSelect } from './admin-common.js';
import { usersPage } from './admin-users.js';
import { resourcesPage } from './admin-resources.js';
import { installationPage } from './admin-installation.js';

const UUID = '([0-9a-fA-F-]{36})';

/** @type {import('./nav.js').PageRoute[]} */
export const adminRoutes = [
  { pattern: /^\/admin\/organizations$/, page: organizationsPage, title: 'Organizations', nav: 'Organizations', href: '/admin/organizations', requires: 'admin' },
  { pattern: new RegExp(`^/admin/organizations/${UUID}$`), page: organizationPage, title: 'Organization', requires: 'admin' },
  { pattern: /^\/admin\/users$/, page: usersPage, title: 'Users', nav: 'Users', href: '/admin/users', requires: 'platform' },
  { pattern: /^\/admin\/resources$/, page: resourcesPage, title: 'Resources', nav: 'Resources', href: '/admin/resources', requires: 'admin' },
  { pattern: /^\/admin\/sessions$/, page: sessionsPage, title: 'Live sessions', nav: 'Sessions', href: '/admin/sessions', requires: 'admin' },
  { pattern: /^\/admin\/workers$/, page: workersPage, title: 'Workers', nav: 'Workers', href: '/admin/workers', requires: 'platform' },
  { pattern: /^\/admin\/audit$/, page: auditPage, title: 'Audit log', nav: 'Audit log', href: '/admin/audit', requires: 'admin' },
  { pattern: /^\/admin\/installation$/, page: installationPage, title: 'Installation', nav: 'Installation', href: '/admin/installation', requires: 'admin' },
];

// ----------------------------------------------------------- organizations

async function organizationsPage(main) {
  const slot = h('div', { id: 'organizations' });
  const errorSlot = h('div');
  const reload = pagedList(
    slot,
    (cursor) => api.get('/organizations', { limit: 50, cursor }),
    (items) =>
      table(
        'Organizations',
        [
          { label: 'Name', cell: (o) => h('a', { href: `#/admin/organizations/${o.id}`, text: o.name }) },
          { label: 'Slug', cell: (o) => h('code', { text: o.slug }) },
          { label: 'Created', cell: (o) => timeCell(o.created_at) },
          {
            label: 'Actions',
            class: 'actions',
            cell: (o) => [
              actionButton('Open', () => go(`/admin/organizations/${o.id}`), { title: `Open ${o.name}` }),
              actionButton('Rename', guarded(errorSlot, async () => (await renameOrganization(o)) && reload()), { title: `Rename ${o.name}` }),
            ],
          },
        ],
        items,
        'No organizations yet.',
      ),
  );
  const create = session.isPlatformAdmin
    ? actionButton('New organization', guarded(errorSlot, async () => {
        const created = await formDialog({
          title: 'New organization',
          submitLabel: 'Create organization',
          fields: [
            { name: 'name', label: 'Name', required: true },
            { name: 'slug', label: 'Slug', hint: 'Lowercase letters, digits and inner hyphens. Leave it empty to have one made from the name (with -2, -3… if taken); you can change it later.' },
            { name: 'make_owner', label: 'Make me its owner', type: 'checkbox', value: true, hint: 'An organization needs an owner before its members’ roles can change.' },
          ],
          submit: async (values) => {
            // Without a slug the appliance derives one and makes it unique.
            const body = { name: values.name.trim() };
            if (values.slug.trim()) body.slug = values.slug.trim();
            const organization = await api.post('/organizations', body);
            if (values.make_owner) {
              try {
                await api.post(`/organizations/${organization.id}/memberships`, { user_id: session.userId, role: 'org_owner' });
                await refreshMe();
              } catch (error) {
                toast(`Organization created, but you were not added as its owner: ${error.message}`, 'warn');
              }
            }
            return organization;
          },
        });
        if (created) {
          toast(`Organization “${created.name}” created.`);
          await reload();
        }
      }), { kind: 'primary' })
    : null;
  setChildren(main, h('h1', { text: 'Organizations' }), errorSlot, section('All organizations', create, slot));
  await reload();
}

async function renameOrganization(organization) {
  const updated = await formDialog({
    title: `Rename ${organization.name}`,
    submitLabel: 'Save',
    fields: [
      { name: 'name', label: 'Name', required: true, value: organization.name },
      { name: 'slug', label: 'Slug', required: true, value: organization.slug },
    ],
    submit: (values) => api.patch(`/organizations/${organization.id}`, { name: values.name.trim(), slug: values.slug.trim() }),
  });
  if (updated) {
    toast('Organization saved.');
    // Other pages name organizations from the signed-in user's memberships.
    await refreshMe();
  }
  return updated;
}

async function organizationPage(main, { match }) {
  const id = match[1];
  const errorSlot = h('div');
  const membersSlot = h('div', { id: 'members' });
  const sourcesSlot = h('div', { id: 'identity-sources' });
  let organization = await api.get(`/organizations/${id}`);
  const users = await loadUsers();

  const header = h('div');
  const drawHeader = () =>
    setChildren(
      header,
      h('h1', {}, organization.name),
      h(
        'dl',
        { class: 'facts' },
        h('dt', { text: 'Slug' }),
        h('dd', {}, h('code', { text: organization.slug })),
        h('dt', { text: 'ID' }),
        h('dd', {}, h('code', { text: organization.id })),
        h('dt', { text: 'Created' }),
        h('dd', {}, timeCell(organization.created_at)),
      ),
      h(
        'p',
        { class: 'links' },
        actionButton('Rename', guarded(errorSlot, async () => {
          const updated = await renameOrganization(organization);
          if (updated) {
            organization = updated;
            drawHeader();
          }
        })),
        ' ',
        h('a', { href: `#/admin/resources?organization_id=${id}`, text: 'Resources' }),
        ' · ',
        h('a', { href: `#/admin/sessions?organization_id=${id}`, text: 'Sessions' }),
        ' · ',
        h('a', { href: `#/admin/audit?organization_id=${id}`, text: 'Audit log' }),
      ),
    );
  drawHeader();

  const loadMembers = () =>
    loadInto(
      membersSlot,
      () => api.getAll(`/organizations/${id}/memberships`),
      (items) =>
        table(
          'Members',
          [
            { label: 'User', cell: (m) => userCell(users, m.user_id) },
            { label: 'Role', cell: (m) => roleLabel(m.role) },
            { label: 'Status', cell: (m) => badge(m.status) },
            { label: 'Since', cell: (m) => timeCell(m.created_at) },
            {
              label: 'Actions',
              class: 'actions',
              cell: (m) => [
                actionButton('Change role', guarded(errorSlot, async () => {
                  const saved = await formDialog({
                    title: 'Change membership',
                    fields: [
                      { name: 'role', label: 'Role', type: 'select', options: ROLES, value: m.role },
                      { name: 'status', label: 'Status', type: 'select', options: [['active', 'Active'], ['disabled', 'Disabled']], value: m.status },
                    ],
                    submit: (values) => api.patch(`/organizations/${id}/memberships/${m.id}`, { role: values.role, status: values.status }),
                  });
                  if (saved) {
                    toast('Membership saved.');
                    await loadMembers();
                  }
                }), { title: `Change role of ${users.get(m.user_id)?.email ?? m.user_id}` }),
                actionButton('Remove', guarded(errorSlot, async () => {
                  if (!(await confirmDialog('Remove this member from the organization?', 'Remove'))) return;
                  await api.del(`/organizations/${id}/memberships/${m.id}`);
                  toast('Member removed.');
                  await loadMembers();
                }), { kind: 'danger', title: `Remove ${users.get(m.user_id)?.email ?? m.user_id}` }),
              ],
            },
          ],
          items,
          'No members.',
        ),
    );

  const addMember = actionButton('Add member', guarded(errorSlot, async () => {
    const userField = session.isPlatformAdmin
      ? { name: 'user_id', label: 'User', type: 'select', required: true, options: [['', 'Choose a user…'], ...[...users.values()].map((u) => [u.id, `${u.display_name} <${u.email}>`])] }
      : { name: 'user_id', label: 'User ID', required: true, hint: 'The user’s ID (a UUID), as your platform administrator gave it.' };
    const added = await formDialog({
      title: 'Add member',
      submitLabel: 'Add member',
      fields: [userField, { name: 'role', label: 'Role', type: 'select', options: ROLES, value: 'org_member' }],
      submit: (values) => api.post(`/organizations/${id}/memberships`, { user_id: values.user_id.trim(), role: values.role }),
    });
    if (added) {
      toast('Member added.');
      await loadMembers();
    }
  }), { kind: 'primary' });

  const loadSources = () =>
    loadInto(
      sourcesSlot,
      () => api.getAll(`/organizations/${id}/identity-sources`),
      (items) =>
        table(
          'Identity sources',
          [
            { label: 'Name', cell: (s) => s.name },
            { label: 'Kind', cell: (s) => s.kind.toUpperCase() },
            { label: 'Enabled', cell: (s) => (s.enabled ? 'yes' : 'no') },
            { label: 'Configuration', cell: (s) => h('code', { class: 'json', text: JSON.stringify(s.config ?? {}) }) },
            { label: 'Created', cell: (s) => timeCell(s.created_at) },
          ],
          items,
          'No identity sources. Users sign in with their local accounts.',
        ),
    );

  const addSource = actionButton('Add identity source', guarded(errorSlot, async () => {
    const added = await formDialog({
      title: 'Add identity source',
      submitLabel: 'Add source',
      fields: [
        { name: 'kind', label: 'Kind', type: 'select', options: [['local', 'Local'], ['ldap', 'LDAP'], ['oidc', 'OpenID Connect']], value: 'ldap' },
        { name: 'name', label: 'Name', required: true },
        { name: 'config', label: 'Configuration (JSON object)', type: 'textarea', value: '{}', hint: 'Stored as a model only; nothing is synchronised yet. Credential-like keys are shown redacted.' },
        { name: 'enabled', label: 'Enabled', type: 'checkbox', value: true },
      ],
      submit: (values) => {
        let config;
        try {
          config = JSON.parse(values.config || '{}');
        } catch {
          throw new api.ApiError(400, { error: { code: 'invalid_request', message_key: 'error.invalid_request', fallback_message: 'The configuration is not valid JSON.', details: { fields: { config: 'must be a JSON object' } } } });
        }
        return api.post(`/organizations/${id}/identity-sources`, { kind: values.kind, name: values.name.trim(), config, enabled: values.enabled });
      },
    });
    if (added) {
      toast('Identity source added.');
      await loadSources();
    }
  }));

  setChildren(main, header, errorSlot, section('Members', addMember, membersSlot), section('Identity sources', addSource, sourcesSlot));
  await Promise.all([loadMembers(), loadSources()]);
}

// ---------------------------------------------------------------- sessions

async function sessionsPage(main, { params }) {
  const [organizations, users, resources] = await Promise.all([loadOrganizations(), loadUsers(), api.getAll('/resources').catch(() => [])]);
  const orgNames = new Map(organizations.map((o) => [o.id, o.name]));
  const resourceNames = new Map(resources.map((r) => [r.id, r.name]));
  let organizationId = params.get('organization_id') ?? '';
  let states = params.get('state') ?? 'pending,starting,active,detached';
  const slot = h('div', { id: 'sessions' });
  const errorSlot = h('div');

  const reload = pagedList(
    slot,
    async (cursor) => {
      const page = await api.get('/sessions', { limit: 50, cursor, organization_id: organizationId, state: states });
      return { ...page, items: await withControllers(page.items) };
    },
    (items) =>
      table(
        'Sessions',
        [
          { label: 'State', cell: (s) => stateCell(s) },
          { label: 'Owner', cell: (s) => userCell(users, s.owner_user_id) },
          { label: 'Resource', cell: (s) => resourceNames.get(s.resource_id) ?? idCell(s.resource_id) },
          { label: 'Organization', cell: (s) => orgNames.get(s.organization_id) ?? idCell(s.organization_id) },
          { label: 'Created', cell: (s) => timeCell(s.created_at) },
          {
            label: 'Controller',
            cell: (s) => (s.controller ? [userCell(users, s.controller.user_id), h('br'), h('small', { class: 'muted' }, 'since ', timeCell(s.controller.attached_at))] : '—'),
          },
          { label: 'Size', cell: (s) => `${s.width}×${s.height}` },
          {
            label: 'Actions',
            class: 'actions',
            cell: (s) => {
              const open = ['pending', 'starting', 'active', 'detached'].includes(s.state);
              if (!open) return h('a', { href: `#/admin/audit?session_id=${s.id}`, text: 'Audit' });
              return [
                ['starting', 'active', 'detached'].includes(s.state)
                  ? actionButton('Shadow', guarded(errorSlot, () => resume(s.id, 'shadow')), { title: `Watch session ${s.id} read-only` })
                  : null,
                actionButton('Terminate', guarded(errorSlot, async () => {
                  if (!(await confirmDialog('Terminate this session? Its user loses the remote desktop.', 'Terminate'))) return;
                  await api.post(`/sessions/${s.id}/terminate`);
                  toast('Session terminated.');
                  await reload();
                }), { kind: 'danger', title: `Terminate session ${s.id}` }),
                h('a', { href: `#/admin/audit?session_id=${s.id}`, text: 'Audit' }),
              ];
            },
          },
        ],
        items,
        'No sessions match.',
      ),
  );

  const filters = [
    filterSelect('session-state-filter', 'State', [
      ['pending,starting,active,detached', 'Open'],
      ['active', 'Active'],
      ['detached', 'Detached'],
      ['terminated,failed', 'Ended'],
      ['', 'All'],
    ], states, (event) => {
      states = event.currentTarget.value;
      reload();
    }),
    filterSelect('session-org-filter', 'Organization', organizationOptions(organizations, 'All organizations'), organizationId, (event) => {
      organizationId = event.currentTarget.value;
      reload();
    }),
    actionButton('Refresh', () => reload()),
  ];
  setChildren(main, h('h1', { text: 'Live sessions' }), errorSlot, section('Sessions', filters, slot));
  await reload();
  const timer = setInterval(() => {
    if (!slot.contains(document.activeElement) && !document.querySelector('dialog[open]')) reload();
  }, 10_000);
  return () => clearInterval(timer);
}

// ----------------------------------------------------------------- workers

async function workersPage(main) {
  const slot = h('div', { id: 'workers' });
  const health = (w) => {
    if (w.status !== 'online') return badge(w.status, 'failed');
    if (w.heartbeat_age_seconds === null || w.heartbeat_age_seconds === undefined) return badge('idle', 'idle');
    return w.heartbeat_age_seconds <= 30 ? badge('healthy', 'active') : badge('late', 'detached');
  };
  const reload = () =>
    loadInto(
      slot,
      () => api.getAll('/workers'),
      (items) => [
        h('p', { class: 'summary' }, `${items.length} workers, ${items.reduce((n, w) => n + w.active_sessions, 0)} of ${items.reduce((n, w) => n + w.capacity, 0)} slots in use.`),
        table(
          'Workers',
          [
            { label: 'Name', cell: (w) => w.name },
            { label: 'Kind', cell: (w) => w.kind },
            { label: 'Status', cell: (w) => w.status },
            { label: 'Health', cell: health },
            { label: 'Sessions', cell: (w) => `${w.active_sessions} / ${w.capacity}` },
            { label: 'Last heartbeat', cell: (w) => (w.last_heartbeat_at ? [timeCell(w.last_heartbeat_at), h('small', { class: 'muted', text: ` (${Math.round(w.heartbeat_age_seconds)} s ago)` })] : 'none yet') },
            { label: 'Leases', cell: (w) => (w.leases.length ? w.leases.map((l) => h('div', {}, idCell(l.session_id), h('small', { class: 'muted' }, ' until ', timeCell(l.expires_at)))) : '—') },
          ],
          items,
          'No workers registered.',
        ),
      ],
    );
  setChildren(main, h('h1', { text: 'Workers' }), section('Workers and their health', actionButton('Refresh', () => reload()), slot));
  await reload();
  const timer = setInterval(reload, 10_000);
  return () => clearInterval(timer);
}

// ------------------------------------------------------------------- audit

async function auditPage(main, { params }) {
  const organizations = await loadOrganizations();
  const users = await loadUsers();
  const choices = session.isPlatformAdmin ? organizations : manageable(organizations);
  const filters = {
    organization_id: params.get('organization_id') ?? (session.isPlatformAdmin ? '' : choices[0]?.id ?? ''),
    session_id: params.get('session_id') ?? '',
    limit: params.get('limit') ?? '50',
  };
  const slot = h('div', { id: 'audit' });
  const pager = h('div', { class: 'pager' });
  const cursors = [null];

  const load = async () => {
    const cursor = cursors[cursors.length - 1];
    await loadInto(
      slot,
      () => api.get('/audit-events', { ...filters, cursor }),
      (page) => {
        drawPager(page.next_cursor);
        return table(
          'Audit events',
          [
            { label: 'Time', cell: (e) => timeCell(e.occurred_at) },
            { label: 'Action', cell: (e) => h('code', { text: e.action }) },
            { label: 'Outcome', cell: (e) => badge(e.outcome, e.outcome === 'success' ? 'active' : 'failed') },
            { label: 'Actor', cell: (e) => (e.actor_user_id ? userCell(users, e.actor_user_id) : e.actor_kind) },
            { label: 'Target', cell: (e) => (e.target_kind ? [e.target_kind, ' ', idCell(e.target_id)] : '—') },
            { label: 'Session', cell: (e) => (e.session_id ? h('a', { href: `#/admin/audit?session_id=${e.session_id}`, title: e.session_id, text: shortId(e.session_id) }) : '—') },
            { label: 'Details', cell: (e) => detailsList(e.details) },
            { label: 'IP', cell: (e) => e.ip ?? '—' },
          ],
          page.items,
          'No events match.',
        );
      },
    );
  };

  const drawPager = (next) => {
    setChildren(
      pager,
      actionButton('Newer', () => {
        cursors.pop();
        load();
      }, { disabled: cursors.length <= 1 }),
      h('span', { class: 'muted', text: ` Page ${cursors.length} ` }),
      actionButton('Older', () => {
        cursors.push(next);
        load();
      }, { disabled: !next }),
    );
  };

  const orgOptions = session.isPlatformAdmin ? organizationOptions(choices, 'All organizations') : organizationOptions(choices);
  const sessionInput = h('input', { id: 'audit-session', name: 'session_id', type: 'text', value: filters.session_id, placeholder: 'Session ID', size: 38, autocomplete: 'off', spellcheck: 'false' });
  const form = h(
    'form',
    {
      class: 'filters',
      'aria-label': 'Audit filters',
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(event.currentTarget);
        filters.organization_id = data.get('organization_id');
        filters.session_id = String(data.get('session_id') ?? '').trim();
        filters.limit = data.get('limit');
        cursors.splice(1);
        load();
      },
    },
    h('div', { class: 'field inline' }, h('label', { for: 'audit-org', text: 'Organization' }), h('select', { id: 'audit-org', name: 'organization_id' }, orgOptions.map(([v, l]) => h('option', { value: v, selected: v === filters.organization_id }, l)))),
    h('div', { class: 'field inline' }, h('label', { for: 'audit-session', text: 'Session' }), sessionInput),
    h('div', { class: 'field inline' }, h('label', { for: 'audit-limit', text: 'Per page' }), h('select', { id: 'audit-limit', name: 'limit' }, ['25', '50', '100', '200'].map((v) => h('option', { value: v, selected: v === filters.limit }, v)))),
    h('button', { type: 'submit', class: 'primary small', text: 'Apply' }),
  );
  setChildren(main, h('h1', { text: 'Audit log' }), form, section('Events', null, slot, pager));
  await load();
}

/** An audit event's details as `key: value` lines. */
function detailsList(details) {
  const entries = Object.entries(details ?? {});
  if (!entries.length) return '—';
  return h(
    'dl',
    { class: 'details' },
    entries.map(([key, value]) => [h('dt', { text: key }), h('dd', { text: value !== null && typeof value === 'object' ? JSON.stringify(value) : String(value) })]),
  );
}
