// @ts-check
// What the viewer does when its socket closes, decided from the close code
// and the message that explained it (pure, so the whole table is tested
// without a socket). Some closes are final for this device: the session
// ended, another device took it over (the appliance closes the old
// device's socket rather than letting it keep watching), or the access
// behind the socket ended. The others reconnect, some later than others.

/** @typedef {import('./transfers.js').LiveEvent} LiveEvent */
/** @typedef {import('./viewer-transport.js').Envelope} Envelope */

/** The gateway's close codes (the appliance's PROTOCOL.md). */
export const CLOSE = Object.freeze({
  /** The attach token was refused (used, expired): back off before the next. */
  ATTACH_REFUSED: 4401,
  /** Signed out, disabled, or no longer allowed on the session. */
  ACCESS_REVOKED: 4403,
  /** The session is over. */
  SESSION_ENDED: 4409,
  /** The appliance missed this client's heartbeat. */
  HEARTBEAT: 4410,
  /** Another device took the session over. */
  TAKEN_OVER: 4411,
  /** Too many messages, or too many sockets for the user. */
  RATE_LIMITED: 4429,
});

/**
 * A rate-limited socket comes back no sooner than this backoff step
 * (4 s ±25 %): reconnecting at once would only meet the same limit.
 */
export const RATE_LIMITED_MIN_ATTEMPT = 3;

/** Why a reconnect is coming, for the countdown's words. */
/** @typedef {'lost' | 'refused' | 'socket_messages' | 'websockets_per_user' | 'rate_limited'} ReconnectWhy */

/**
 * @typedef {{action: 'end', notice: LiveEvent | null}
 *   | {action: 'taken_over'}
 *   | {action: 'revoked', reason: string, signIn: boolean, event: LiveEvent | null}
 *   | {action: 'reconnect', minAttempt: number, why: ReconnectWhy, notice: LiveEvent | null}} CloseDecision
 *   `notice`: the `transport.closed` event to show; `minAttempt`: the
 *   backoff step to wait at least; `signIn`: the sign-in itself is gone.
 */

/**
 * Decides what follows a close.
 * @param {number} code  the close code (1006 for a socket that went quiet)
 * @param {Envelope | null} last  the last message that explains a close, if one came
 * @returns {CloseDecision}
 */
export function closeDecision(code, last) {
  const notice = last?.type === 'transport.closed' ? last.event ?? null : null;
  switch (code) {
    case CLOSE.SESSION_ENDED:
      return { action: 'end', notice };
    case CLOSE.TAKEN_OVER:
      return { action: 'taken_over' };
    case CLOSE.ACCESS_REVOKED: {
      const revoked = last?.type === 'session.access_revoked' ? last : null;
      const reason = String(revoked?.payload?.reason ?? revoked?.event?.details?.reason ?? 'access_removed');
      return { action: 'revoked', reason, signIn: SIGN_IN_GONE.includes(reason), event: revoked?.event ?? null };
    }
    case CLOSE.RATE_LIMITED: {
      const reason = last?.type === 'error' ? last.event?.details?.reason ?? last.payload?.details?.reason : null;
      const why = reason === 'socket_messages' || reason === 'websockets_per_user' ? reason : 'rate_limited';
      return { action: 'reconnect', minAttempt: RATE_LIMITED_MIN_ATTEMPT, why, notice: null };
    }
    case CLOSE.ATTACH_REFUSED:
      return { action: 'reconnect', minAttempt: 1, why: 'refused', notice };
    default:
      return { action: 'reconnect', minAttempt: 0, why: 'lost', notice };
  }
}

/** Revocations after which this browser's sign-in is no good either. */
const SIGN_IN_GONE = ['signed_out', 'user_disabled', 'user_removed'];

/**
 * Why the access ended, in words (the event's own text comes first when
 * there is one; these are for a close without it).
 * @param {string} reason  `details.reason` of `session.access_revoked`
 */
export function revokedWords(reason) {
  switch (reason) {
    case 'signed_out':
      return 'You were signed out, so this connection was closed. Sign in again to continue.';
    case 'user_disabled':
      return 'Your account was disabled, so this connection was closed. Ask an administrator to enable it.';
    case 'user_removed':
      return 'Your account no longer exists, so this connection was closed.';
    case 'access_unverified':
      return 'Your access to this session could not be confirmed, so this connection was closed. Try again in a moment.';
    default:
      return 'You no longer have access to this session, so this connection was closed.';
  }
}

/**
 * The connection state while a reconnect waits.
 * @param {ReconnectWhy} why
 * @param {number} seconds  left until the attempt
 */
export function reconnectingText(why, seconds) {
  const when = `reconnecting in ${seconds} s…`;
  switch (why) {
    case 'socket_messages':
      return `Too many messages sent; ${when}`;
    case 'websockets_per_user':
      return `Too many viewers open for your account; ${when}`;
    case 'rate_limited':
      return `Rate limited by the appliance; ${when}`;
    default:
      return `Connection lost; ${when}`;
  }
}

/**
 * Whether an API error says the session is over (gone, or terminated or
 * failed): nothing to attach to or take over any more.
 * @param {{status?: number, code?: string, details?: Record<string, any>}} error  an ApiError
 */
export function sessionGone(error) {
  return error?.status === 404 || (error?.code === 'invalid_session_state' && ['terminated', 'failed'].includes(error.details?.state));
}

/**
 * What to do when asking for a fresh attach block failed: try again later
 * (the appliance unreachable, failing or rate limiting, at least as late
 * as its Retry-After), or give up and show the error.
 * @param {{status?: number, code?: string, details?: Record<string, any>}} error  an ApiError
 * @returns {{action: 'retry', why: ReconnectWhy, minDelayMs: number} | {action: 'fail'}}
 */
export function reattachDecision(error) {
  const status = error?.status ?? 0;
  if (status === 429) {
    const seconds = Number(error.details?.retry_after_seconds);
    return { action: 'retry', why: 'rate_limited', minDelayMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0 };
  }
  if (status === 0 || status >= 500) return { action: 'retry', why: 'lost', minDelayMs: 0 };
  return { action: 'fail' };
}
