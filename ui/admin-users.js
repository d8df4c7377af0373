// @ts-check
// The admin console's users (platform administrators only): the list with
// each account's state, creating a user, and disabling or enabling one
// (which closes the disabled user's sessions and open connections).

import * as api from './api.js';
import { h, setChildren, section, table, actionButton, formDialog, confirmDialog, timeCell, badge, humanize, toast } from './ui.js';
import { session } from './session.js';
import { pagedList, guarded } from './admin-common.js';

export async function usersPage(main) {
  const slot = h('div', { id: 'users' });
  const errorSlot = h('div');
  const reload = pagedList(
    slot,
    (cursor) => api.get('/users', { limit: 50, cursor }),
    (items) =>
      table(
        'Users',
        [
          { label: 'Email', cell: (u) => u.email },
          { label: 'Display name', cell: (u) => u.display_name },
          { label: 'Platform role', cell: (u) => (u.platform_role ? badge(humanize(u.platform_role), 'admin') : '—') },
          { label: 'Status', cell: (u) => (u.disabled ? badge('disabled') : badge('active')) },
          { label: 'ID', cell: (u) => h('code', { class: 'id-full', text: u.id }) },
          { label: 'Created', cell: (u) => timeCell(u.created_at) },
          { label: 'Actions', class: 'actions', cell: (u) => disableButton(u) },
        ],
        items,
      ),
  );
  /** @param {{id: string, email: string, disabled?: boolean}} user */
  const disableButton = (user) => {
    // The appliance refuses it too: an administrator cannot lock themself out.
    if (user.id === session.userId) return h('span', { class: 'muted', text: 'you' });
    const disabling = !user.disabled;
    return actionButton(disabling ? 'Disable' : 'Enable', guarded(errorSlot, async () => {
      const question = `Disable ${user.email}? They are signed out everywhere, and their open connections are closed.`;
      if (disabling && !(await confirmDialog(question, 'Disable'))) return;
      await api.patch(`/users/${user.id}`, { disabled: disabling });
      toast(disabling ? `${user.email} is disabled; their connections were closed.` : `${user.email} is enabled again.`);
      await reload();
    }), { kind: disabling ? 'danger' : 'secondary', title: `${disabling ? 'Disable' : 'Enable'} ${user.email}` });
  };
  const create = actionButton('New user', guarded(errorSlot, async () => {
    const created = await formDialog({
      title: 'New user',
      submitLabel: 'Create user',
      fields: [
        { name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'off' },
        { name: 'display_name', label: 'Display name', required: true, autocomplete: 'off' },
        { name: 'password', label: 'Initial password', type: 'password', required: true, autocomplete: 'new-password', hint: 'At least 12 characters. Give it to the user over a safe channel.' },
        { name: 'platform_role', label: 'Platform role', type: 'select', options: [['', 'None (regular user)'], ['platform_admin', 'Platform administrator'], ['platform_recovery_admin', 'Recovery administrator']], value: '' },
      ],
      submit: (values) => {
        const body = { email: values.email.trim(), display_name: values.display_name.trim(), password: values.password };
        if (values.platform_role) body.platform_role = values.platform_role;
        return api.post('/users', body);
      },
    });
    if (created) {
      toast(`User ${created.email} created.`);
      await reload();
    }
  }), { kind: 'primary' });
  setChildren(main, h('h1', { text: 'Users' }), errorSlot, section('All users', create, slot));
  await reload();
}
