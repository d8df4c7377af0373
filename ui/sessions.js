// @ts-check
// Remote sessions as the pages list and open them: the cells that describe
// a session or a resource, the controller lookup, and starting, resuming or
// shadowing a session, which hands its attach block to the viewer.

import * as api from './api.js';
import { h, badge, humanize } from './ui.js';
import { go } from './nav.js';
import { state, session } from './session.js';
import { windowSize } from './viewer-screen.js';

/**
 * An attach block (`attach` of a start, attach, takeover or shadow answer).
 * @typedef {object} AttachBlock
 * @property {string} attach_token  single use, short-lived
 * @property {string} gateway_url   the gateway WebSocket, relative or absolute
 * @property {string} [expires_at]
 */

/**
 * A session row (`GET /sessions`, `GET /sessions/{id}`).
 * @typedef {object} RemoteSession
 * @property {string} id
 * @property {string} state  pending, starting, active, detached, terminated, failed
 * @property {string} resource_id
 * @property {string} [organization_id]
 * @property {string} [owner_user_id]
 * @property {string} [created_at]
 * @property {number} [width]
 * @property {number} [height]
 * @property {string | null} [failure_reason]
 * @property {string | null} [detach_reason]
 * @property {{user_id: string, device_id?: string | null, attached_at?: string} | null} [controller]
 */

/**
 * A resource (`GET /resources`).
 * @typedef {object} Resource
 * @property {string} id
 * @property {string} name
 * @property {string} protocol  rdp, vnc, ssh
 * @property {string} host
 * @property {number} port
 * @property {string} [organization_id]
 * @property {{clipboard_mode?: string, file_transfer_mode?: string}} [policy]
 */

/** @typedef {'control' | 'shadow'} ViewerMode */

/** Attach blocks handed over by the page that started or resumed a session. */
/** @type {Map<string, {attach: AttachBlock, mode: ViewerMode}>} */
const handoffs = new Map();

/**
 * Gives the viewer of `sessionId` the attach block just obtained for it.
 * @param {string} sessionId
 * @param {AttachBlock} attach
 * @param {ViewerMode} [mode]
 */
export function handOff(sessionId, attach, mode = 'control') {
  handoffs.set(sessionId, { attach, mode });
}

/**
 * The attach block handed over for `sessionId`, once (a token is single use).
 * @param {string} sessionId
 * @returns {{attach: AttachBlock, mode: ViewerMode} | undefined}
 */
export function takeHandOff(sessionId) {
  const handed = handoffs.get(sessionId);
  handoffs.delete(sessionId);
  return handed;
}

/**
 * Adds `controller` to sessions that may have one: the list endpoint
 * leaves it out, the session's own endpoint has it.
 * @param {RemoteSession[]} sessions
 * @returns {Promise<RemoteSession[]>}
 */
export async function withControllers(sessions) {
  const live = sessions.filter((s) => ['pending', 'starting', 'active'].includes(s.state)).slice(0, 50);
  const details = await Promise.all(live.map((s) => api.get(`/sessions/${s.id}`).catch(() => null)));
  const byId = new Map(details.filter(Boolean).map((detail) => [detail.id, detail]));
  return sessions.map((s) => (byId.has(s.id) ? { ...s, ...byId.get(s.id) } : s));
}

/**
 * Whether this appliance can start sessions on `resource`'s protocol.
 * @param {Resource} resource
 */
export function canStart(resource) {
  const protocols = state.installation?.session_protocols;
  return !protocols || protocols.includes(resource.protocol);
}

/**
 * Why a resource cannot be started, in words (the API's `protocol_unsupported`).
 * @param {Resource} resource
 */
export function unsupportedWhy(resource) {
  return `${resource.protocol.toUpperCase()} sessions are not available on this appliance yet.`;
}

/**
 * The protocol, marked when this appliance cannot start sessions on it.
 * @param {Resource} resource
 */
export function protocolCell(resource) {
  const name = resource.protocol.toUpperCase();
  return canStart(resource) ? name : [name, h('small', { class: 'muted', text: ' not available yet', title: unsupportedWhy(resource) })];
}

/** Words for why a detached session is detached (`detach_reason`). */
const DETACH_REASONS = {
  detached: 'left open',
  transport_closed: 'connection lost',
  appliance_restarted: 'appliance restarted — Resume reconnects',
};

/**
 * A session's state badge with the reason a person wants next to it.
 * @param {RemoteSession} s
 */
export function stateCell(s) {
  const why = s.state === 'failed' ? s.failure_reason && humanize(s.failure_reason) : s.state === 'detached' ? DETACH_REASONS[s.detach_reason] : null;
  return [badge(s.state), why ? h('small', { class: 'muted', text: ` ${why}` }) : null];
}

/**
 * Starts a session of `resource` and opens the viewer.
 * @param {string} resourceId
 */
export async function connect(resourceId) {
  const started = await startSession(resourceId);
  handOff(started.session.id, started.attach, 'control');
  go(`/viewer/${started.session.id}`);
}

/**
 * Whether this console runs inside the desktop app, which can open a
 * desktop in its own native window. The app says so with a script it puts
 * in every page it shows; a browser has no such thing.
 */
export function inDesktopApp() {
  return Boolean(/** @type {{rapDesktopApp?: {nativeViewer?: boolean}}} */ (globalThis).rapDesktopApp?.nativeViewer);
}

/**
 * Hands an attach block to the desktop app's native viewer. The app
 * intercepts this navigation before it is made; the token rides in the
 * fragment, so even a navigation that went ahead would not send it.
 * @param {AttachBlock} attach
 * @param {string} title  the window's title (the resource's name)
 */
function openNativeWindow(attach, title) {
  const fragment = new URLSearchParams({ token: attach.attach_token, title });
  location.assign(`/desktop-app/open-window#${fragment}`);
}

/**
 * Starts a session of a resource in a native window (desktop app only).
 * @param {string} resourceId
 * @param {string} name
 */
export async function connectInWindow(resourceId, name) {
  openNativeWindow((await startSession(resourceId)).attach, name);
}

/**
 * Starts a session of a resource at this window's size, from this device.
 * @param {string} resourceId
 */
function startSession(resourceId) {
  /** @type {Record<string, unknown>} */
  const body = { resource_id: resourceId, ...windowSize() };
  if (session.deviceId) body.device_id = session.deviceId;
  return api.post('/sessions', body);
}

/**
 * Reattaches to (or takes over) a session in a native window.
 * @param {string} sessionId
 * @param {string} name
 * @param {'attach' | 'takeover'} [how]
 */
export async function resumeInWindow(sessionId, name, how = 'attach') {
  const answer = await api.post(`/sessions/${sessionId}/${how}`);
  openNativeWindow(answer.attach, name);
}

/**
 * A native window asks for a fresh token (desktop app only): its
 * connection dropped, or the person takes control back there. This
 * console, signed in, asks the appliance and hands the app the token, or
 * the reason there is none (`refused`, or `later` when asking again may
 * help), in the same kind of navigation the app takes for "Open in window".
 * @param {{window?: unknown, session?: unknown, how?: unknown}} detail  from the app, checked by it
 */
export async function renewWindow(detail) {
  const how = detail.how === 'takeover' ? 'takeover' : 'attach';
  /** @type {Record<string, string>} */
  const fields = { window: String(detail.window) };
  try {
    const answer = await api.post(`/sessions/${encodeURIComponent(String(detail.session))}/${how}`);
    fields.token = answer.attach.attach_token;
  } catch (error) {
    const apiError = /** @type {any} */ (error);
    const words = apiError?.status === 401 ? 'Sign in on the console first.' : String(apiError?.message ?? error);
    // Unreachable (restarting), busy or rate limited: a reconnect asks again.
    const passing = apiError?.status === 0 || apiError?.status === 429 || apiError?.status >= 500;
    fields[passing ? 'later' : 'refused'] = words;
  }
  location.assign(`/desktop-app/renew-window#${new URLSearchParams(fields)}`);
}

/**
 * Reattaches to (or takes over, or shadows) a session and opens the viewer.
 * @param {string} sessionId
 * @param {'attach' | 'takeover' | 'shadow'} [how]
 */
export async function resume(sessionId, how = 'attach') {
  const answer = await api.post(`/sessions/${sessionId}/${how}`);
  handOff(sessionId, answer.attach, how === 'shadow' ? 'shadow' : 'control');
  go(`/viewer/${sessionId}${how === 'shadow' ? '?mode=shadow' : ''}`);
}
