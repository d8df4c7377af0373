// h264.js, what the viewer reads of an H.264 access unit before decoding
// it, against the cases of the appliance's wire/src/h264.rs tests: NAL
// units and their types, key frames, and the `avc1.PPCCLL` codec string a
// VideoDecoder is configured with.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nalUnits, nalType, isKeyFrame, codecString, NAL_IDR, NAL_SPS } from '../../h264.js';

const bytes = (list) => new Uint8Array(list);

// h264.rs `KEY`: SPS (High profile, level 3.2), PPS, IDR slice, the shape of
// a key frame from FreeRDP's shadow server; `DELTA`: two non-IDR slices.
const KEY = bytes([0, 0, 0, 1, 0x67, 0x64, 0x00, 0x20, 0xac, 0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0, 0, 1, 0x65, 0x88, 0x84, 0x00]);
const DELTA = bytes([0, 0, 0, 1, 0x41, 0x9a, 0x02, 0, 0, 1, 0x41, 0x9b]);

test('key frames are told from the NAL types (key_frames_are_told_from_the_nal_types)', () => {
  assert.deepEqual(nalUnits(KEY).map(nalType), [NAL_SPS, 8, NAL_IDR]);
  assert.equal(isKeyFrame(KEY), true);
  assert.equal(isKeyFrame(DELTA), false);
  assert.equal(isKeyFrame(bytes([])), false);
  assert.equal(isKeyFrame(bytes([0, 0, 1])), false, 'a start code with nothing after it');
  // Zeros before a 4-byte start code belong to it, not to the unit before.
  assert.deepEqual(nalUnits(bytes([0, 0, 0, 1, 0x65, 0xb8, 0, 0, 0, 0, 1, 0x41])).map((unit) => [...unit]), [[0x65, 0xb8], [0x41]]);
});

test('NAL units are views into the access unit, without start codes', () => {
  const units = nalUnits(KEY);
  assert.deepEqual(units.map((unit) => [...unit]), [[0x67, 0x64, 0x00, 0x20, 0xac], [0x68, 0xeb, 0xe3], [0x65, 0x88, 0x84]]);
  assert.equal(units[0].buffer, KEY.buffer);
  assert.deepEqual(nalUnits(bytes([0x41, 0x9a])), [], 'no start code: no units');
  assert.deepEqual(nalUnits(bytes([7, 0, 0, 1, 0x41, 0x02, 0x03])).map((unit) => [...unit]), [[0x41, 0x02, 0x03]], 'bytes before the first start code are left out');
});

test('the codec string comes from the SPS (the_codec_string_comes_from_the_sps)', () => {
  assert.equal(codecString(KEY), 'avc1.640020');
  assert.equal(codecString(DELTA), null);
  assert.equal(codecString(bytes([0, 0, 1, 0x67, 0x42])), null, 'a cut SPS');
  // Baseline, constrained (0xe0), level 3.0; and the SPS need not come first.
  assert.equal(codecString(bytes([0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1e, 0x8d])), 'avc1.42e01e');
  // High profile, level 4.0: what frame-worker.js asks the decoder about.
  assert.equal(codecString(bytes([0, 0, 0, 1, 0x27, 0x64, 0x00, 0x28, 0xac])), 'avc1.640028', 'nal_ref_idc bits do not change the type');
});
