// @ts-check
// The signed-in user and the installation, as the console knows them. The
// router and the sign-in pages (app.js) write `state`; every other page
// reads it through `session`.

import * as api from './api.js';

/**
 * @typedef {object} Membership
 * @property {string} [id]
 * @property {string} organization_id
 * @property {string} organization_name
 * @property {string} role    `org_owner`, `org_admin`, `org_operator`, `org_member`, `org_viewer`
 * @property {string} status  `active` or `disabled`
 */

/**
 * `GET /auth/me`.
 * @typedef {object} Me
 * @property {{id: string, email: string, display_name: string}} user
 * @property {string | null} [platform_role]
 * @property {Membership[]} memberships
 */

/**
 * `GET /installation`.
 * @typedef {object} Installation
 * @property {string} installation_id
 * @property {boolean} bootstrapped
 * @property {string} authority_mode  `legacy` or `strict`
 * @property {string} [app_env]
 * @property {string[]} [session_protocols]  the protocols sessions can start on; absent: all
 * @property {import('./trust.js').TlsView} [tls]  how the appliance serves HTTPS, and its CA's fingerprint
 * @property {'activation' | 'setup_code' | 'none' | null} [bootstrap_method]  what creating the owner needs; null once there is one
 */

/** @typedef {{text: string, kind: 'info' | 'warn'}} LoginNotice */

/**
 * @type {{installation: Installation | null, me: Me | null, loginNotice: LoginNotice | null}}
 */
export const state = {
  installation: null,
  me: null,
  /** A message for the sign-in page (why the user landed there). */
  loginNotice: null,
};

/** What pages know about the signed-in user. */
export const session = {
  /** @returns {Me | null} */
  get me() {
    return state.me;
  },
  /** @returns {Installation | null} */
  get installation() {
    return state.installation;
  },
  /** @returns {string | null} */
  get userId() {
    return state.me?.user?.id ?? null;
  },
  /** @returns {boolean} */
  get isPlatformAdmin() {
    return state.me?.platform_role === 'platform_admin';
  },
  /**
   * Organizations where the user is an active owner or admin.
   * @returns {string[]}
   */
  get managedOrganizationIds() {
    return (state.me?.memberships ?? [])
      .filter((membership) => membership.status === 'active' && ['org_owner', 'org_admin'].includes(membership.role))
      .map((membership) => membership.organization_id);
  },
  /** @returns {boolean} */
  get canAdminister() {
    return this.isPlatformAdmin || this.managedOrganizationIds.length > 0;
  },
  /**
   * A device id to give new sessions (this browser's, when known).
   * @returns {string | null}
   */
  get deviceId() {
    return api.currentAuth()?.device?.id ?? null;
  },
};

/** Reloads the signed-in user's memberships (after they change). */
export async function refreshMe() {
  state.me = await api.get('/auth/me');
}
