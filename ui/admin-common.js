// @ts-check
// What the admin pages share: organization and user look-ups, the role
// names, a paged list with "Load more", buttons that show their failures,
// and filter controls.

import * as api from './api.js';
import { h, setChildren, actionButton, errorBox, idCell } from './ui.js';
import { session } from './session.js';

export const ROLES = [
  ['org_owner', 'Owner'],
  ['org_admin', 'Admin'],
  ['org_operator', 'Operator'],
  ['org_member', 'Member'],
  ['org_viewer', 'Viewer'],
];
export const roleLabel = (role) => ROLES.find(([value]) => value === role)?.[1] ?? role;

/** Organizations the caller can see (all of them for platform admins). */
export async function loadOrganizations() {
  return api.getAll('/organizations');
}

/** Organizations where the caller may create things. */
export function manageable(organizations) {
  if (session.isPlatformAdmin) return organizations;
  const managed = new Set(session.managedOrganizationIds);
  return organizations.filter((organization) => managed.has(organization.id));
}

/** `id → user` for platform admins; an empty map for everyone else. */
export async function loadUsers() {
  if (!session.isPlatformAdmin) return new Map();
  const users = await api.getAll('/users').catch(() => []);
  return new Map(users.map((user) => [user.id, user]));
}

export function userCell(users, id) {
  if (!id) return '—';
  const user = users.get(id);
  if (!user) return idCell(id);
  return h('span', { title: id }, user.display_name || user.email, h('br'), h('small', { class: 'muted', text: user.email }));
}

/**
 * A list with "Load more": `fetchPage(cursor)` returns `{items,
 * next_cursor}`; `render(items)` draws them. Returns a reload function.
 */
export function pagedList(slot, fetchPage, render) {
  let items = [];
  let cursor = null;
  const loadMore = async (event) => {
    event.currentTarget.disabled = true;
    try {
      const page = await fetchPage(cursor);
      items = items.concat(page.items);
      cursor = page.next_cursor;
      draw();
    } catch (error) {
      slot.append(errorBox(error));
    }
  };
  const draw = () => setChildren(slot, render(items), cursor ? h('div', { class: 'pager' }, actionButton('Load more', loadMore)) : null);
  return async () => {
    slot.setAttribute('aria-busy', 'true');
    if (!slot.childElementCount) setChildren(slot, h('p', { class: 'muted', text: 'Loading…' }));
    try {
      const page = await fetchPage(null);
      items = page.items;
      cursor = page.next_cursor;
      draw();
    } catch (error) {
      setChildren(slot, errorBox(error));
    } finally {
      slot.removeAttribute('aria-busy');
    }
  };
}

/** A button handler that shows failures in `errorSlot`. */
export function guarded(errorSlot, task) {
  return async (event) => {
    const button = event?.currentTarget;
    if (button) button.disabled = true;
    errorSlot.replaceChildren();
    try {
      await task(event);
    } catch (error) {
      setChildren(errorSlot, errorBox(error));
    } finally {
      if (button?.isConnected) button.disabled = false;
    }
  };
}

export function organizationOptions(organizations, anyLabel) {
  const options = organizations.map((organization) => [organization.id, organization.name]);
  return anyLabel ? [['', anyLabel], ...options] : options;
}

export function filterSelect(id, label, options, value, onchange) {
  return h(
    'div',
    { class: 'field inline' },
    h('label', { for: id, text: label }),
    h('select', { id, onchange }, options.map(([optionValue, optionLabel]) => h('option', { value: optionValue, selected: optionValue === value }, optionLabel))),
  );
}
