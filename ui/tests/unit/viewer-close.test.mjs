// viewer-close.js: what the viewer does after its socket closes, from the
// close code and the message that came before it; the whole table at once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeDecision, reattachDecision, sessionGone, reconnectingText, revokedWords, CLOSE, RATE_LIMITED_MIN_ATTEMPT } from '../../viewer-close.js';

const event = (code, reason) => ({ code, message_key: `event.${code}`, fallback_message: code, details: reason ? { reason } : {} });
const closed = { type: 'transport.closed', payload: { reason: 'worker_lost' }, event: event('transport_closed') };
const revoked = (reason) => ({ type: 'session.access_revoked', payload: { session_id: 's', reason }, event: event('access_revoked', reason) });
const limited = (reason) => ({ type: 'error', payload: { code: 'rate_limited' }, event: event('rate_limited', reason) });
const takenOver = { type: 'session.taken_over', payload: { session_id: 's', by_user_id: 'u' }, event: event('session_taken_over') };

test('each close code, with and without the message that explains it', () => {
  /** [code, last message, expected decision] */
  const table = [
    [CLOSE.SESSION_ENDED, null, { action: 'end', notice: null }],
    [CLOSE.SESSION_ENDED, closed, { action: 'end', notice: closed.event }],
    [CLOSE.TAKEN_OVER, takenOver, { action: 'taken_over' }],
    [CLOSE.TAKEN_OVER, null, { action: 'taken_over' }],
    [CLOSE.ACCESS_REVOKED, revoked('signed_out'), { action: 'revoked', reason: 'signed_out', signIn: true, event: revoked('signed_out').event }],
    [CLOSE.ACCESS_REVOKED, revoked('user_disabled'), { action: 'revoked', reason: 'user_disabled', signIn: true, event: revoked('user_disabled').event }],
    [CLOSE.ACCESS_REVOKED, revoked('user_removed'), { action: 'revoked', reason: 'user_removed', signIn: true, event: revoked('user_removed').event }],
    [CLOSE.ACCESS_REVOKED, revoked('access_removed'), { action: 'revoked', reason: 'access_removed', signIn: false, event: revoked('access_removed').event }],
    [CLOSE.ACCESS_REVOKED, revoked('access_unverified'), { action: 'revoked', reason: 'access_unverified', signIn: false, event: revoked('access_unverified').event }],
    // Without its message the close still ends access here, for the safe reason.
    [CLOSE.ACCESS_REVOKED, null, { action: 'revoked', reason: 'access_removed', signIn: false, event: null }],
    [CLOSE.RATE_LIMITED, limited('socket_messages'), { action: 'reconnect', minAttempt: RATE_LIMITED_MIN_ATTEMPT, why: 'socket_messages', notice: null }],
    [CLOSE.RATE_LIMITED, limited('websockets_per_user'), { action: 'reconnect', minAttempt: RATE_LIMITED_MIN_ATTEMPT, why: 'websockets_per_user', notice: null }],
    [CLOSE.RATE_LIMITED, null, { action: 'reconnect', minAttempt: RATE_LIMITED_MIN_ATTEMPT, why: 'rate_limited', notice: null }],
    [CLOSE.ATTACH_REFUSED, null, { action: 'reconnect', minAttempt: 1, why: 'refused', notice: null }],
    [CLOSE.HEARTBEAT, null, { action: 'reconnect', minAttempt: 0, why: 'lost', notice: null }],
    [1006, null, { action: 'reconnect', minAttempt: 0, why: 'lost', notice: null }],
    [1001, closed, { action: 'reconnect', minAttempt: 0, why: 'lost', notice: closed.event }],
    // An earlier refusal (an `error`) does not explain an ordinary drop.
    [4000, limited('socket_messages'), { action: 'reconnect', minAttempt: 0, why: 'lost', notice: null }],
  ];
  for (const [code, last, expected] of table) assert.deepEqual(closeDecision(code, last), expected, `close ${code} after ${last?.type ?? 'nothing'}`);
});

test('the close codes are the appliance’s', () => {
  assert.deepEqual({ ...CLOSE }, { ATTACH_REFUSED: 4401, ACCESS_REVOKED: 4403, SESSION_ENDED: 4409, HEARTBEAT: 4410, TAKEN_OVER: 4411, RATE_LIMITED: 4429 });
});

test('a revocation says why in words', () => {
  assert.match(revokedWords('signed_out'), /^You were signed out/);
  assert.match(revokedWords('user_disabled'), /^Your account was disabled/);
  assert.match(revokedWords('user_removed'), /no longer exists/);
  assert.match(revokedWords('access_removed'), /^You no longer have access to this session/);
  assert.match(revokedWords('access_unverified'), /could not be confirmed/);
  assert.match(revokedWords('something_new'), /^You no longer have access/);
});

test('the countdown says why it waits', () => {
  assert.equal(reconnectingText('lost', 3), 'Connection lost; reconnecting in 3 s…');
  assert.equal(reconnectingText('socket_messages', 4), 'Too many messages sent; reconnecting in 4 s…');
  assert.match(reconnectingText('websockets_per_user', 5), /^Too many viewers open/);
  assert.match(reconnectingText('rate_limited', 6), /^Rate limited/);
});

test('a refused fresh attach: retried when unreachable, failing or rate limited (not before Retry-After)', () => {
  assert.deepEqual(reattachDecision({ status: 0 }), { action: 'retry', why: 'lost', minDelayMs: 0 });
  assert.deepEqual(reattachDecision({ status: 503 }), { action: 'retry', why: 'lost', minDelayMs: 0 });
  assert.deepEqual(reattachDecision({ status: 429, details: { reason: 'requests_per_address', retry_after_seconds: 7 } }), { action: 'retry', why: 'rate_limited', minDelayMs: 7000 });
  assert.deepEqual(reattachDecision({ status: 429, details: {} }), { action: 'retry', why: 'rate_limited', minDelayMs: 0 });
  assert.deepEqual(reattachDecision({ status: 409, code: 'session_in_use' }), { action: 'fail' });
  assert.deepEqual(reattachDecision({ status: 404 }), { action: 'fail' });
});

test('a session is gone when the appliance says not found, terminated or failed', () => {
  assert.equal(sessionGone({ status: 404, code: 'not_found' }), true);
  assert.equal(sessionGone({ status: 409, code: 'invalid_session_state', details: { state: 'terminated' } }), true);
  assert.equal(sessionGone({ status: 409, code: 'invalid_session_state', details: { state: 'failed' } }), true);
  assert.equal(sessionGone({ status: 409, code: 'invalid_session_state', details: { state: 'active' } }), false);
  assert.equal(sessionGone({ status: 409, code: 'session_in_use' }), false);
  assert.equal(sessionGone({ status: 0 }), false);
});
