// transfers.js: the Files panel's sizes in words, transfer ids, base64,
// the SHA-256 of downloads, and transfer states in words.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_FILE_BYTES, UPLOAD_CHUNK_BYTES, humanSize, localEvent, base64ToBytes, newTransferId, sha256Hex, isRunning, transferStateText, newlyOffered } from '../../transfers.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('the limits are the appliance\'s: 25 MiB a file, 256 KiB a chunk', () => {
  assert.equal(MAX_FILE_BYTES, 25 * 1024 * 1024);
  assert.equal(UPLOAD_CHUNK_BYTES, 256 * 1024);
});

test('sizes in words', () => {
  assert.equal(humanSize(0), '0 B');
  assert.equal(humanSize(1023), '1023 B');
  assert.equal(humanSize(1024), '1.0 KiB');
  assert.equal(humanSize(3.4 * 1024), '3.4 KiB');
  assert.equal(humanSize(1_300_000), '1.2 MiB');
  assert.equal(humanSize(25 * 1024 ** 3), '25.0 GiB');
  assert.equal(humanSize('nonsense'), '0 B');
});

test('a local refusal has the shape of a live-plane event', () => {
  assert.deepEqual(localEvent('file_too_large', 'Too big.'), { code: 'file_too_large', message_key: 'event.file_too_large', fallback_message: 'Too big.' });
});

test('base64 chunks decode to their bytes; damaged ones throw', () => {
  assert.deepEqual([...base64ToBytes('AAEC/w==')], [0, 1, 2, 255]);
  assert.deepEqual([...base64ToBytes('')], []);
  assert.throws(() => base64ToBytes('not base64!'));
});

test('transfer ids are UUID v4, with and without crypto.randomUUID', () => {
  assert.match(newTransferId(), UUID_V4);
  // Outside a secure context browsers have no randomUUID.
  Object.defineProperty(crypto, 'randomUUID', { value: undefined, configurable: true });
  try {
    assert.equal(crypto.randomUUID, undefined);
    const ids = new Set(Array.from({ length: 20 }, () => newTransferId()));
    assert.equal(ids.size, 20);
    for (const id of ids) assert.match(id, UUID_V4);
  } finally {
    delete crypto.randomUUID;
  }
  assert.equal(typeof crypto.randomUUID, 'function');
});

test('SHA-256 in lowercase hex, as file_download.completed carries it', async () => {
  assert.equal(await sha256Hex(new Blob(['abc'])), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('waiting, uploading and downloading transfers are running; the rest are over', () => {
  for (const state of ['waiting', 'uploading', 'downloading']) assert.equal(isRunning({ state }), true, state);
  for (const state of ['completed', 'refused', 'cancelled', 'failed']) assert.equal(isRunning({ state }), false, state);
});

test('transfer states in words, with progress while running', () => {
  const base = { name: 'report.txt', size: 2048, done: 512 };
  assert.equal(transferStateText({ ...base, state: 'waiting' }), 'Waiting');
  assert.equal(transferStateText({ ...base, state: 'uploading' }), 'Uploading… 25 % (512 B of 2.0 KiB)');
  assert.equal(transferStateText({ ...base, state: 'downloading', size: 0, done: 0 }), 'Downloading… 0 % (0 B of 0 B)');
  assert.equal(transferStateText({ ...base, state: 'completed' }), 'Completed');
  assert.equal(transferStateText({ ...base, state: 'completed', finalName: 'report (1).txt' }), 'Completed: saved as report (1).txt');
  assert.equal(transferStateText({ ...base, state: 'completed', finalName: 'report.txt' }), 'Completed');
  assert.equal(transferStateText({ ...base, state: 'refused' }), 'Refused');
});

test('newly offered files: none the first time, then the names not offered before', () => {
  const a = { file_name: 'a.txt' };
  const b = { file_name: 'b.txt' };
  assert.deepEqual(newlyOffered(null, [a, b]), []);
  assert.deepEqual(newlyOffered([a], [a, b]), [b]);
  assert.deepEqual(newlyOffered([a, b], [a]), []);
});
