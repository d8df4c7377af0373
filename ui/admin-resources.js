// @ts-check
// The admin console's resources: the list by organization, creating and
// editing a resource (host, port, certificate checks, clipboard and file
// transfer policies) and setting or rotating its secret.

import * as api from './api.js';
import { h, setChildren, section, table, actionButton, formDialog, confirmDialog, badge, toast, shortId } from './ui.js';
import { protocolCell } from './sessions.js';
import { loadOrganizations, manageable, pagedList, guarded, organizationOptions, filterSelect } from './admin-common.js';

const MODES = [
  ['disabled', 'Disabled'],
  ['client_to_server', 'Client to server'],
  ['server_to_client', 'Server to client'],
  ['bidirectional', 'Both directions'],
];
const modeLabel = (mode) => MODES.find(([value]) => value === mode)?.[1] ?? mode;
const DEFAULT_PORTS = { rdp: 3389, vnc: 5900, ssh: 22 };

function resourceFields(resource, organizations) {
  const creating = !resource;
  const protocol = resource?.protocol ?? 'rdp';
  return [
    creating && { name: 'organization_id', label: 'Organization', type: 'select', required: true, options: organizationOptions(organizations), value: organizations[0]?.id },
    { name: 'name', label: 'Name', required: true, value: resource?.name },
    creating && { name: 'protocol', label: 'Protocol', type: 'select', options: [['rdp', 'RDP'], ['vnc', 'VNC'], ['ssh', 'SSH']], value: 'rdp' },
    { name: 'host', label: 'Host', required: true, value: resource?.host, hint: 'Host name or IP address, without scheme or port.', autocomplete: 'off' },
    { name: 'port', label: 'Port', type: 'number', min: 1, max: 65535, value: resource?.port ?? '', placeholder: String(DEFAULT_PORTS[protocol]), hint: creating ? 'Empty: the protocol’s default port.' : null },
    {
      name: 'certificate_verification_mode',
      label: 'Certificate verification',
      type: 'select',
      options: [['strict', 'Strict (verify the certificate)'], ['ignore', 'Ignore (trust any certificate)']],
      value: resource?.certificate_verification_mode ?? 'strict',
    },
    { name: 'certificate_fingerprint', label: 'Pinned certificate fingerprint', value: resource?.certificate_fingerprint ?? '', placeholder: 'sha256:…', hint: 'Optional: sha256: and 64 hex digits. Empty: no pin.', autocomplete: 'off' },
    { name: 'clipboard_mode', label: 'Clipboard', type: 'select', options: MODES, value: resource?.policy?.clipboard_mode ?? 'disabled' },
    { name: 'file_transfer_mode', label: 'File transfer', type: 'select', options: MODES, value: resource?.policy?.file_transfer_mode ?? 'disabled' },
  ];
}

function resourceBody(values, creating) {
  const body = {
    name: values.name.trim(),
    host: values.host.trim(),
    certificate_verification_mode: values.certificate_verification_mode,
    policy: { clipboard_mode: values.clipboard_mode, file_transfer_mode: values.file_transfer_mode },
  };
  if (values.port !== '') body.port = Number(values.port);
  const fingerprint = values.certificate_fingerprint.trim();
  if (fingerprint) body.certificate_fingerprint = fingerprint;
  else if (!creating) body.certificate_fingerprint = null;
  if (creating) {
    body.organization_id = values.organization_id;
    body.protocol = values.protocol;
  }
  return body;
}

const resourceFieldFor = (path) => (path.startsWith('policy.') ? path.slice('policy.'.length) : path.split(/[.[]/)[0]);

async function setSecret(resource) {
  const saved = await formDialog({
    title: `${resource.secret_ref ? 'Rotate' : 'Set'} the secret of ${resource.name}`,
    submitLabel: resource.secret_ref ? 'Rotate secret' : 'Save secret',
    intro: h('p', { class: 'hint', text: 'The credentials the appliance uses to sign in to the remote host. They are stored encrypted and never shown again.' }),
    fields: [
      { name: 'username', label: 'Username', required: true, autocomplete: 'off' },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password' },
      { name: 'domain', label: 'Domain', autocomplete: 'off', hint: 'Optional.' },
    ],
    submit: (values) => {
      const body = { username: values.username, password: values.password };
      if (values.domain.trim()) body.domain = values.domain.trim();
      return api.put(`/resources/${resource.id}/secret`, body);
    },
  });
  if (saved) toast(`Secret saved (key ${saved.key_id}).`);
  return saved;
}

export async function resourcesPage(main, { params }) {
  const organizations = await loadOrganizations();
  const names = new Map(organizations.map((o) => [o.id, o.name]));
  let filter = params.get('organization_id') ?? '';
  const slot = h('div', { id: 'resources' });
  const errorSlot = h('div');

  const reload = pagedList(
    slot,
    (cursor) => api.get('/resources', { limit: 50, cursor, organization_id: filter }),
    (items) =>
      table(
        'Resources',
        [
          { label: 'Name', cell: (r) => h('strong', { text: r.name }) },
          { label: 'Organization', cell: (r) => names.get(r.organization_id) ?? shortId(r.organization_id) },
          { label: 'Protocol', cell: (r) => protocolCell(r) },
          { label: 'Host', cell: (r) => `${r.host}:${r.port}` },
          { label: 'Certificate', cell: (r) => [r.certificate_verification_mode, r.certificate_fingerprint ? ' · pinned' : ''] },
          { label: 'Clipboard', cell: (r) => modeLabel(r.policy.clipboard_mode) },
          { label: 'Files', cell: (r) => modeLabel(r.policy.file_transfer_mode) },
          { label: 'Secret', cell: (r) => (r.secret_ref ? badge('set', 'active') : badge('not set', 'detached')) },
          {
            label: 'Actions',
            class: 'actions',
            cell: (r) => [
              actionButton('Edit', guarded(errorSlot, async () => {
                const saved = await formDialog({
                  title: `Edit ${r.name}`,
                  fields: resourceFields(r, organizations),
                  fieldFor: resourceFieldFor,
                  submit: (values) => api.patch(`/resources/${r.id}`, resourceBody(values, false)),
                });
                if (saved) {
                  toast('Resource saved.');
                  await reload();
                }
              }), { title: `Edit ${r.name}` }),
              actionButton(r.secret_ref ? 'Rotate secret' : 'Set secret', guarded(errorSlot, async () => (await setSecret(r)) && reload()), { title: `${r.secret_ref ? 'Rotate' : 'Set'} the secret of ${r.name}` }),
              actionButton('Delete', guarded(errorSlot, async () => {
                if (!(await confirmDialog(`Delete ${r.name}? Its secret is destroyed too.`, 'Delete'))) return;
                await api.del(`/resources/${r.id}`);
                toast('Resource deleted.');
                await reload();
              }), { kind: 'danger', title: `Delete ${r.name}` }),
            ],
          },
        ],
        items,
        'No resources yet.',
      ),
  );

  const create = actionButton('New resource', guarded(errorSlot, async () => {
    const choices = manageable(organizations);
    const created = await formDialog({
      title: 'New resource',
      submitLabel: 'Create resource',
      fields: resourceFields(null, choices),
      fieldFor: resourceFieldFor,
      submit: (values) => api.post('/resources', resourceBody(values, true)),
    });
    if (!created) return;
    toast(`Resource “${created.name}” created.`);
    await reload();
    await setSecret(created);
    await reload();
  }), { kind: 'primary' });

  const filterControl = filterSelect('resource-org-filter', 'Organization', organizationOptions(organizations, 'All organizations'), filter, (event) => {
    filter = event.currentTarget.value;
    reload();
  });
  setChildren(main, h('h1', { text: 'Resources' }), errorSlot, section('All resources', [filterControl, create], slot));
  await reload();
}
