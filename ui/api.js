// @ts-check
// The appliance's HTTP API: a fetch wrapper that carries the bearer token,
// refreshes it in the background before it expires, retries once after a
// refresh when a call meets `token_expired`, and signs out on any other 401.
//
// Tokens live in localStorage so every tab of the console shares one auth
// session; refreshes are serialised across tabs with the Web Locks API
// (where the page is a secure context), so a rotated refresh token is never
// presented twice (which would revoke the whole auth session).

const BASE = '/api/v1';
const AUTH_KEY = 'rap.auth';
const DEVICE_KEY = 'rap.device';
/** Refresh this long before the access token expires (at most a fifth of its life). */
const REFRESH_MARGIN_MS = 60_000;

/**
 * The error envelope of the HTTP API.
 * @typedef {object} ErrorEnvelope
 * @property {{code?: string, message_key?: string, fallback_message?: string, details?: Record<string, any>, trace_id?: string}} [error]
 */

/**
 * A sign-in (`POST /auth/login`, `/auth/refresh`), kept in localStorage.
 * @typedef {object} AuthTokens
 * @property {string} access_token
 * @property {string} refresh_token
 * @property {string} [access_expires_at]
 * @property {{id: string, email: string, display_name: string}} [user]
 * @property {{id: string, name: string}} [device]
 */

/** An error from the API (or from the network), shaped like the envelope. */
export class ApiError extends Error {
  /**
   * @param {number} status  the HTTP status; 0 when the appliance could not be reached
   * @param {ErrorEnvelope | null} envelope
   * @param {string | null} [traceId]  the `X-Trace-Id` header, when the body has none
   */
  constructor(status, envelope, traceId = null) {
    const error = envelope?.error ?? {};
    const code = error.code ?? (status ? 'internal_error' : 'network_error');
    super(error.fallback_message ?? fallbackFor(status));
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.messageKey = error.message_key ?? `error.${code}`;
    this.details = error.details ?? {};
    this.traceId = error.trace_id ?? traceId;
  }

  /**
   * `details.fields`, the per-field reasons, or `{}`.
   * @returns {Record<string, string>}
   */
  get fields() {
    return this.details?.fields ?? {};
  }
}

/** @param {number} status */
function fallbackFor(status) {
  if (!status) return 'The appliance could not be reached. Check the connection and try again.';
  return `The request failed (HTTP ${status}).`;
}

// ---------------------------------------------------------------- storage

/** @param {string} key */
function readJson(key) {
  try {
    return JSON.parse(localStorage.getItem(key) ?? 'null');
  } catch {
    return null;
  }
}

/** @type {AuthTokens | null} */
let tokens = readJson(AUTH_KEY);
/** @type {Set<(tokens: AuthTokens | null, reason: string) => void>} */
const listeners = new Set();
let refreshTimer = null;

/**
 * Calls `listener(tokens | null, reason)` whenever the sign-in changes;
 * `reason`: signed_in, signed_out, refreshed, expired. Returns the way to stop.
 * @param {(tokens: AuthTokens | null, reason: string) => void} listener
 */
export function onAuthChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function emit(reason) {
  for (const listener of listeners) listener(tokens, reason);
}

function store(next, reason) {
  tokens = next;
  if (next) localStorage.setItem(AUTH_KEY, JSON.stringify(next));
  else localStorage.removeItem(AUTH_KEY);
  schedule();
  emit(reason);
}

/**
 * The current sign-in (`{access_token, user, device, …}`) or null.
 * @returns {AuthTokens | null}
 */
export function currentAuth() {
  return tokens;
}

// Another tab signed in, refreshed or signed out.
window.addEventListener('storage', (event) => {
  if (event.key !== AUTH_KEY) return;
  const wasSignedIn = Boolean(tokens);
  tokens = readJson(AUTH_KEY);
  schedule();
  if (wasSignedIn !== Boolean(tokens)) emit(tokens ? 'signed_in' : 'signed_out');
});

function schedule() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  if (!tokens?.access_expires_at) return;
  const left = Date.parse(tokens.access_expires_at) - Date.now();
  const due = left - Math.min(REFRESH_MARGIN_MS, left / 5);
  refreshTimer = setTimeout(() => {
    refresh().catch(() => {});
  }, Math.max(due, 1_000));
}
schedule();

// ------------------------------------------------------------------ device

/**
 * This browser's device: `{id, name}`, remembered between sign-ins.
 * @returns {{id: string, name: string}}
 */
export function rememberedDevice() {
  const device = readJson(DEVICE_KEY) ?? {};
  return { id: device.id ?? newUuid(), name: device.name ?? guessDeviceName() };
}

function rememberDevice(device) {
  localStorage.setItem(DEVICE_KEY, JSON.stringify({ id: device.id, name: device.name }));
}

function guessDeviceName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom/.test(ua) ? 'Chromium' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'macOS' : /Android/.test(ua) ? 'Android' : /Linux/.test(ua) ? 'Linux' : /iPhone|iPad/.test(ua) ? 'iOS' : '';
  return os ? `${browser} on ${os}` : browser;
}

/**
 * A random UUID (v4); works outside secure contexts too.
 * @returns {string}
 */
export function newUuid() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---------------------------------------------------------------- requests

function queryString(query) {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

async function send(method, path, body, accessToken) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (response.status === 204) return { ok: true, data: null };
  const data = await response.json().catch(() => null);
  if (response.ok) return { ok: true, data };
  return { ok: false, error: new ApiError(response.status, data, response.headers.get('X-Trace-Id')) };
}

/**
 * Calls the API. `options.query` becomes the query string; `options.auth`
 * (default true) adds the bearer token. Resolves with the JSON body (null
 * for 204), rejects with an ApiError.
 * @param {string} method
 * @param {string} path  below /api/v1
 * @param {{body?: unknown, query?: Record<string, unknown>, auth?: boolean}} [options]
 * @returns {Promise<any>}
 */
export async function api(method, path, options = {}) {
  const { body, query, auth = true } = options;
  const url = path + queryString(query);
  for (let attempt = 0; ; attempt += 1) {
    if (auth && !tokens) throw signedOutError();
    const result = await send(method, url, body, auth ? tokens.access_token : null);
    if (result.ok) return result.data;
    const { error } = result;
    if (auth && error.status === 401) {
      if (error.code === 'token_expired' && attempt === 0 && (await refresh())) continue;
      if (tokens) store(null, 'expired');
    }
    throw error;
  }
}

function signedOutError() {
  return new ApiError(401, {
    error: { code: 'unauthorized', message_key: 'error.unauthorized', fallback_message: 'Please sign in.', details: {} },
  });
}

/** @type {(path: string, query?: Record<string, unknown>) => Promise<any>} */
export const get = (path, query) => api('GET', path, { query });
/** @type {(path: string, body?: unknown) => Promise<any>} */
export const post = (path, body) => api('POST', path, { body: body ?? {} });
/** @type {(path: string, body: unknown) => Promise<any>} */
export const patch = (path, body) => api('PATCH', path, { body });
/** @type {(path: string, body: unknown) => Promise<any>} */
export const put = (path, body) => api('PUT', path, { body });
/** @type {(path: string) => Promise<any>} */
export const del = (path) => api('DELETE', path);

/**
 * Every page of a list endpoint (bounded: at most `maxPages` pages of 500).
 * @param {string} path
 * @param {Record<string, unknown>} [query]
 * @param {number} [maxPages]
 * @returns {Promise<any[]>}
 */
export async function getAll(path, query = {}, maxPages = 20) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const data = await get(path, { ...query, limit: 500, cursor });
    items.push(...data.items);
    cursor = data.next_cursor;
    if (!cursor) break;
  }
  return items;
}

// -------------------------------------------------------------------- auth

/**
 * Signs in; remembers the device the appliance confirms.
 * @param {string} email
 * @param {string} password
 * @param {string | null} deviceName  empty: the remembered (or guessed) name
 * @returns {Promise<AuthTokens>}
 */
export async function login(email, password, deviceName) {
  const device = rememberedDevice();
  const name = deviceName?.trim() || device.name;
  const data = await api('POST', '/auth/login', { auth: false, body: { email, password, device: { id: device.id, name } } });
  rememberDevice(data.device ?? { id: device.id, name });
  store(data, 'signed_in');
  return data;
}

/** Signs out here and on the appliance (best effort). */
export async function logout() {
  const current = tokens;
  store(null, 'signed_out');
  if (current) {
    await send('POST', '/auth/logout', {}, current.access_token).catch(() => {});
  }
}

/** Forgets a sign-in the appliance has already ended (nothing to tell it). */
export function forgetSignIn() {
  store(null, 'signed_out');
}

let refreshing = null;

/**
 * Exchanges the refresh token for a new pair. Resolves true when there is a
 * fresh access token (ours, or one another tab just got), false otherwise
 * (signed out, or the appliance could not be reached).
 * @returns {Promise<boolean>}
 */
export function refresh() {
  refreshing ??= withLock(refreshNow).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

function withLock(task) {
  if (navigator.locks?.request) return navigator.locks.request('rap.auth.refresh', task);
  return task();
}

async function refreshNow() {
  const mine = tokens;
  const stored = readJson(AUTH_KEY);
  if (!stored) {
    if (mine) store(null, 'signed_out');
    return false;
  }
  if (mine && stored.refresh_token !== mine.refresh_token) {
    // Another tab rotated it while we waited for the lock.
    tokens = stored;
    schedule();
    return true;
  }
  const result = await send('POST', '/auth/refresh', { refresh_token: stored.refresh_token }, null);
  if (result.ok) {
    store(result.data, 'refreshed');
    return true;
  }
  if (result.error.status === 0) {
    // Offline for now: try again shortly, keep the sign-in.
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => refresh().catch(() => {}), 15_000);
    return false;
  }
  store(null, 'expired');
  return false;
}
