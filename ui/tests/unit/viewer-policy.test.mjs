// viewer-policy.js: what the clipboard and file transfer policies let the
// viewer offer now, and why not (the appliance checks every request again).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyWords, clipboardSendBlocked, fileRights, fileBlockedReason } from '../../viewer-policy.js';

const controller = { open: true, role: 'controller', ended: false, shadow: false, takenOver: false };

test('policies in words, an unknown one left to the appliance', () => {
  assert.equal(policyWords('bidirectional'), 'both directions');
  assert.equal(policyWords('client_to_server'), 'from this computer to the remote desktop only');
  assert.equal(policyWords(null), 'unknown; the appliance enforces it');
  assert.equal(policyWords('future_mode'), 'future_mode');
});

test('clipboard text goes out only from a controller, and not against the policy', () => {
  assert.equal(clipboardSendBlocked('bidirectional', true), false);
  assert.equal(clipboardSendBlocked(null, true), false, 'unknown: the appliance decides');
  assert.equal(clipboardSendBlocked('client_to_server', true), false);
  assert.equal(clipboardSendBlocked('server_to_client', true), true);
  assert.equal(clipboardSendBlocked('disabled', true), true);
  assert.equal(clipboardSendBlocked('bidirectional', false), true);
});

test('a connected controller may move files the way the policy allows', () => {
  assert.deepEqual(fileRights('bidirectional', controller), { connected: true, controlling: true, policyUpload: true, policyDownload: true, upload: true, download: true });
  assert.deepEqual(fileRights('client_to_server', controller), { connected: true, controlling: true, policyUpload: true, policyDownload: false, upload: true, download: false });
  assert.deepEqual(fileRights('server_to_client', controller), { connected: true, controlling: true, policyUpload: false, policyDownload: true, upload: false, download: true });
  assert.equal(fileRights(null, controller).upload, true, 'unknown: the appliance decides');
  assert.equal(fileRights('disabled', controller).download, false);
});

test('viewers, taken-over controllers, closed sockets and ended sessions move nothing', () => {
  for (const status of [
    { ...controller, role: 'viewer' },
    { ...controller, takenOver: true },
    { ...controller, open: false },
    { ...controller, role: null },
    { ...controller, ended: true },
  ]) {
    const rights = fileRights('bidirectional', status);
    assert.equal(rights.upload || rights.download, false, JSON.stringify(status));
  }
});

test('why files cannot move, the policy first', () => {
  assert.equal(fileBlockedReason('upload', 'bidirectional', controller), '');
  assert.equal(fileBlockedReason('upload', 'disabled', controller), 'File transfer is turned off for this resource.');
  assert.match(fileBlockedReason('upload', 'server_to_client', controller), /^Uploads are turned off/);
  assert.match(fileBlockedReason('download', 'client_to_server', controller), /^Downloads are turned off/);
  assert.equal(fileBlockedReason('download', 'client_to_server', { ...controller, role: 'viewer' }).startsWith('Downloads are turned off'), true);
  assert.equal(fileBlockedReason('upload', 'bidirectional', { ...controller, ended: true }), 'The session has ended.');
  assert.match(fileBlockedReason('upload', 'bidirectional', { ...controller, shadow: true, role: 'viewer' }), /read-only/);
  assert.match(fileBlockedReason('upload', 'bidirectional', { ...controller, takenOver: true }), /read-only/);
  assert.equal(fileBlockedReason('upload', 'bidirectional', { ...controller, open: false }), 'Files move only while the viewer is connected.');
});
