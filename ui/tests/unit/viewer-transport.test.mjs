// viewer-transport.js: the parts of the gateway connection without a
// socket: reconnect backoff, the WebSocket URL, and the envelopes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reconnectDelay, socketUrl, attachEnvelope, encodeEnvelope, parseEnvelope, RECONNECT_MAX_DELAY_MS, PING_INTERVAL_MS, PONG_TIMEOUT_MS } from '../../viewer-transport.js';

test('reconnects back off from 0.5 s, doubling, to 30 s', () => {
  const middle = () => 0.5; // no jitter
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => reconnectDelay(attempt, middle)), [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(reconnectDelay(60, middle), RECONNECT_MAX_DELAY_MS);
});

test('each delay is spread by ±25 %', () => {
  assert.equal(reconnectDelay(0, () => 0), 375);
  assert.equal(reconnectDelay(0, () => 0.999_999), 625);
  assert.equal(reconnectDelay(10, () => 0), 22_500);
  for (let i = 0; i < 100; i += 1) {
    const delay = reconnectDelay(2);
    assert.ok(delay >= 1500 && delay <= 2500, String(delay));
  }
});

test('the heartbeat: a ping every 5 s, a pong 15 s late counts as a dropped socket', () => {
  assert.equal(PING_INTERVAL_MS, 5_000);
  assert.equal(PONG_TIMEOUT_MS, 15_000);
});

test('the gateway URL becomes ws: or wss: beside the page', () => {
  assert.equal(String(socketUrl('/api/v1/gateway/ws', 'http://127.0.0.1:8080/#/viewer/x')), 'ws://127.0.0.1:8080/api/v1/gateway/ws');
  assert.equal(String(socketUrl('/api/v1/gateway/ws', 'https://rap.example/')), 'wss://rap.example/api/v1/gateway/ws');
  assert.equal(String(socketUrl('https://gw.example/api/v1/gateway/ws', 'http://rap.example/')), 'wss://gw.example/api/v1/gateway/ws');
});

test('attach asks for binary_v1 frames, zlib, the colour mode and paced updates', () => {
  assert.deepEqual(JSON.parse(attachEnvelope('tok', 'grayscale')), {
    type: 'attach',
    payload: { attach_token: 'tok', render_transport: 'binary_v1', color_mode: 'grayscale', compression: 'zlib', render_acks: true },
  });
});

test('attach lists the codecs only when there are any (h264: the host’s own stream)', () => {
  assert.deepEqual(JSON.parse(attachEnvelope('tok', 'full_color', ['h264'])), {
    type: 'attach',
    payload: { attach_token: 'tok', render_transport: 'binary_v1', color_mode: 'full_color', compression: 'zlib', render_acks: true, codecs: ['h264'] },
  });
  assert.equal('codecs' in JSON.parse(attachEnvelope('tok', 'full_color', [])).payload, false);
  assert.equal('codecs' in JSON.parse(attachEnvelope('tok', 'full_color')).payload, false);
});

test('client messages are {type, payload}, or {type} alone without a payload', () => {
  assert.equal(encodeEnvelope('ping'), '{"type":"ping"}');
  assert.equal(encodeEnvelope('input.key', { code: 'KeyA', down: true }), '{"type":"input.key","payload":{"code":"KeyA","down":true}}');
});

test('server text that is not JSON is dropped, not thrown', () => {
  assert.deepEqual(parseEnvelope('{"type":"pong"}'), { type: 'pong' });
  assert.equal(parseEnvelope('not json'), null);
});
