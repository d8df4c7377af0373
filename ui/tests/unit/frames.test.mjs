// frames.js, the `binary_v1` frame header parser and decoder, against the
// bytes the appliance writes (appliance/src/protocol/frame.rs,
// `FrameHeader::write`, and its test `the_header_is_the_contracts_byte_for_byte`)
// and against messages that are not frames.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { HEADER_LEN, Encoding, FLAG_LAST, FLAG_KEY_FRAME, readHeader, parseHeader, decodeFrame, bytesPerPixel, grayToRgba, inflateInto, isVideo } from '../../frames.js';

// The exact bytes of frame.rs `the_header_is_the_contracts_byte_for_byte`:
// RawGray8, Grayscale, last, seq 0x0102_0304, rect (0x0a0b, 0x0c0d,
// 0x0e0f, 0x1011), payload_len 0x1213_1415.
const RUST_HEADER = [
  0x52, 0x41, 0x50, 0x46, 1, 1, 1, 1, 0x04, 0x03, 0x02, 0x01, 0x0b, 0x0a, 0x0d, 0x0c, 0x0f, 0x0e, 0x11,
  0x10, 0x15, 0x14, 0x13, 0x12,
];

/** An ArrayBuffer holding exactly `bytes`. */
const buffer = (bytes) => new Uint8Array(bytes).buffer;

/**
 * A whole frame message as `FrameHeader::write` and `encode_binary_frame`
 * lay it out: the header, then the payload.
 */
function frame({ encoding = Encoding.RAW_RGBA8, colorMode = 0, flags = FLAG_LAST, seq = 1, x = 0, y = 0, width = 1, height = 1, payloadLength, payload }) {
  const out = new Uint8Array(HEADER_LEN + payload.length);
  const view = new DataView(out.buffer);
  out.set([0x52, 0x41, 0x50, 0x46, 1, encoding, colorMode, flags]);
  view.setUint32(8, seq, true);
  view.setUint16(12, x, true);
  view.setUint16(14, y, true);
  view.setUint16(16, width, true);
  view.setUint16(18, height, true);
  view.setUint32(20, payloadLength ?? payload.length, true);
  out.set(payload, HEADER_LEN);
  return out.buffer;
}

test('the header is 24 bytes, as HEADER_LEN in frame.rs', () => {
  assert.equal(HEADER_LEN, 24);
  assert.equal(RUST_HEADER.length, HEADER_LEN);
});

test('reads the header of the_header_is_the_contracts_byte_for_byte field for field', () => {
  assert.deepEqual(readHeader(buffer(RUST_HEADER)), {
    encoding: Encoding.RAW_GRAY8,
    colorMode: 'grayscale',
    last: true,
    keyFrame: false,
    seq: 0x0102_0304,
    x: 0x0a0b,
    y: 0x0c0d,
    width: 0x0e0f,
    height: 0x1011,
    payloadLength: 0x1213_1415,
  });
});

test('the same test: 23 bytes are not a header (FrameHeader::read(&bytes[..23]) is None)', () => {
  assert.throws(() => readHeader(buffer(RUST_HEADER.slice(0, 23))), /shorter than its header \(23 of 24 bytes\)/);
  assert.throws(() => parseHeader(buffer(RUST_HEADER.slice(0, 23))), /shorter than its header/);
  assert.throws(() => parseHeader(new ArrayBuffer(0)), /shorter than its header \(0 of 24 bytes\)/);
});

test('the same test: a wrong magic (wrong[0] = b\'X\') is refused', () => {
  const wrong = RUST_HEADER.slice();
  wrong[0] = 0x58; // 'X'
  assert.throws(() => readHeader(buffer(wrong)), /without the RAPF magic/);
  assert.throws(() => parseHeader(buffer(wrong)), /without the RAPF magic/);
});

test('the Rust header alone announces 0x12131415 payload bytes that are not there', () => {
  assert.throws(() => parseHeader(buffer(RUST_HEADER)), /frame payload cut short/);
});

test('a version other than 1 is refused', () => {
  for (const version of [0, 2, 255]) {
    const bytes = RUST_HEADER.slice();
    bytes[4] = version;
    assert.throws(() => readHeader(buffer(bytes)), new RegExp(`unknown frame version ${version}`));
  }
});

test('encodings and colour modes outside the contract are refused (FrameHeader::read returns None)', () => {
  // frame.rs's test: `bytes[5] = 6` is "an encoding this client does not know".
  for (const encoding of [6, 9, 255]) {
    assert.throws(() => parseHeader(frame({ encoding, payload: [0, 0, 0, 0] })), new RegExp(`unknown frame encoding ${encoding}`));
  }
  assert.throws(() => parseHeader(frame({ colorMode: 2, payload: [0, 0, 0, 0] })), /unknown frame color mode 2/);
});

test('each encoding code of frame.rs Encoding::code is known, with its bytes per pixel', () => {
  assert.deepEqual(Encoding, { RAW_RGBA8: 0, RAW_GRAY8: 1, ZLIB_RGBA8: 2, ZLIB_GRAY8: 3, H264: 4, H264_REGION: 5 });
  assert.deepEqual([0, 1, 2, 3].map(bytesPerPixel), [4, 1, 4, 1]);
  assert.throws(() => bytesPerPixel(4), /unknown frame encoding 4/, 'H.264 carries no pixels of its own');
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(isVideo), [false, false, false, false, true, true]);
});

test('reads an H.264 key frame header as frame.rs writes it (encoding 4, flags last | key frame)', () => {
  // frame.rs: `FrameHeader { encoding: H264, color_mode: FullColor, key_frame: true, ..header }`
  // writes bytes[5] = 4 and bytes[7] = FLAG_LAST | FLAG_KEY_FRAME.
  const bytes = RUST_HEADER.slice();
  bytes[5] = 4;
  bytes[6] = 0;
  bytes[7] = FLAG_LAST | FLAG_KEY_FRAME;
  assert.deepEqual(readHeader(buffer(bytes)), {
    encoding: Encoding.H264,
    colorMode: 'full_color',
    last: true,
    keyFrame: true,
    seq: 0x0102_0304,
    x: 0x0a0b,
    y: 0x0c0d,
    width: 0x0e0f,
    height: 0x1011,
    payloadLength: 0x1213_1415,
  });
});

test('an H.264 access unit carries its bytes; a region (encoding 5) carries none', () => {
  const unit = parseHeader(frame({ encoding: Encoding.H264, flags: FLAG_KEY_FRAME, x: 8, y: 16, width: 1280, height: 720, payload: [0, 0, 0, 1, 0x67, 0x64] }));
  assert.deepEqual([unit.encoding, unit.keyFrame, unit.last, unit.x, unit.y, unit.width, unit.height], [Encoding.H264, true, false, 8, 16, 1280, 720]);
  assert.deepEqual([...unit.payload], [0, 0, 0, 1, 0x67, 0x64]);
  const region = parseHeader(frame({ encoding: Encoding.H264_REGION, x: 10, y: 20, width: 30, height: 40, payload: [] }));
  assert.deepEqual([region.encoding, region.last, region.x, region.y, region.width, region.height, region.payload.length], [Encoding.H264_REGION, true, 10, 20, 30, 40, 0]);
  const nothing = parseHeader(frame({ encoding: Encoding.H264_REGION, width: 0, height: 0, payload: [] }));
  assert.deepEqual([nothing.width, nothing.height], [0, 0], 'the empty region: the unit paints nothing');
  assert.throws(() => parseHeader(frame({ encoding: Encoding.H264_REGION, payload: [1, 2] })), /an H\.264 region with a payload \(2 bytes\)/);
});

test('decodeFrame (the main thread) refuses H.264: only the frame worker decodes it', async () => {
  await assert.rejects(decodeFrame(frame({ encoding: Encoding.H264, flags: FLAG_LAST | FLAG_KEY_FRAME, payload: [0, 0, 1, 0x65] })), /H\.264 frames are decoded in the frame worker only/);
  await assert.rejects(decodeFrame(frame({ encoding: Encoding.H264_REGION, payload: [] })), /H\.264 frames are decoded in the frame worker only/);
});

test('flags: bit 0 is the last rectangle, bit 1 the key frame', () => {
  const flagsOf = (flags) => {
    const { last, keyFrame } = parseHeader(frame({ flags, payload: [0, 0, 0, 0] }));
    return { last, keyFrame };
  };
  assert.deepEqual(flagsOf(0), { last: false, keyFrame: false });
  assert.deepEqual(flagsOf(FLAG_LAST), { last: true, keyFrame: false });
  assert.deepEqual(flagsOf(FLAG_KEY_FRAME), { last: false, keyFrame: true });
  assert.deepEqual(flagsOf(FLAG_LAST | FLAG_KEY_FRAME), { last: true, keyFrame: true });
});

test('the payload is the rest of the message (encode_binary_frame: header then payload)', () => {
  const header = parseHeader(frame({ seq: 7, x: 3, y: 4, width: 1, height: 2, encoding: Encoding.RAW_GRAY8, colorMode: 1, payload: [10, 20] }));
  assert.equal(header.seq, 7);
  assert.equal(header.colorMode, 'grayscale');
  assert.deepEqual([...header.payload], [10, 20]);
  assert.equal(header.payload.byteOffset, HEADER_LEN, 'a view into the message, not a copy');
});

test('a payload length beyond the message is refused', () => {
  assert.throws(() => parseHeader(frame({ payloadLength: 5, payload: [1, 2, 3, 4] })), /frame payload cut short/);
  assert.throws(() => parseHeader(frame({ payloadLength: 0xffff_ffff, payload: [] })), /frame payload cut short/);
});

test('bytes after the payload are refused (gateway.rs: the message is HEADER_LEN + payload_len)', () => {
  assert.throws(() => parseHeader(frame({ payloadLength: 3, payload: [1, 2, 3, 4] })), /frame longer than its payload \(1 bytes after it\)/);
});

test('decodes raw RGBA8 as a view of the message', async () => {
  const decoded = await decodeFrame(frame({ width: 2, height: 1, x: 5, y: 6, seq: 9, payload: [1, 2, 3, 255, 4, 5, 6, 255] }));
  assert.deepEqual([...decoded.rgba], [1, 2, 3, 255, 4, 5, 6, 255]);
  assert.equal(decoded.rgba.byteOffset, HEADER_LEN);
  assert.deepEqual({ x: decoded.x, y: decoded.y, width: decoded.width, height: decoded.height, seq: decoded.seq, last: decoded.last }, { x: 5, y: 6, width: 2, height: 1, seq: 9, last: true });
  assert.equal('payload' in decoded, false);
});

test('expands raw gray8 to opaque RGBA8', async () => {
  const decoded = await decodeFrame(frame({ encoding: Encoding.RAW_GRAY8, colorMode: 1, width: 3, height: 1, payload: [0, 128, 255] }));
  assert.deepEqual([...decoded.rgba], [0, 0, 0, 255, 128, 128, 128, 255, 255, 255, 255, 255]);
  assert.deepEqual([...grayToRgba(new Uint8Array([7]), 1)], [7, 7, 7, 255]);
});

test('inflates zlib RGBA8 and zlib gray8 (RFC 1950, as frame.rs zlib writes)', async () => {
  const rgba = [9, 8, 7, 255, 6, 5, 4, 255, 3, 2, 1, 255, 0, 0, 0, 255];
  const color = await decodeFrame(frame({ encoding: Encoding.ZLIB_RGBA8, width: 2, height: 2, payload: deflateSync(Buffer.from(rgba)) }));
  assert.deepEqual([...color.rgba], rgba);
  const gray = await decodeFrame(frame({ encoding: Encoding.ZLIB_GRAY8, colorMode: 1, width: 2, height: 1, payload: deflateSync(Buffer.from([50, 200])) }));
  assert.deepEqual([...gray.rgba], [50, 50, 50, 255, 200, 200, 200, 255]);
});

test('a raw payload of the wrong size for its rectangle is refused', async () => {
  await assert.rejects(decodeFrame(frame({ width: 2, height: 1, payload: [1, 2, 3, 4] })), /holds 4 bytes, short of the 8/);
  await assert.rejects(decodeFrame(frame({ width: 1, height: 1, payload: [1, 2, 3, 4, 5] })), /holds 5 bytes, more than the 4/);
});

test('a zlib payload that inflates to the wrong size, or is not zlib, is refused', async () => {
  await assert.rejects(decodeFrame(frame({ encoding: Encoding.ZLIB_GRAY8, width: 4, height: 1, payload: deflateSync(Buffer.from([1, 2])) })), /inflates to 2 bytes instead of 4/);
  await assert.rejects(decodeFrame(frame({ encoding: Encoding.ZLIB_GRAY8, width: 1, height: 1, payload: deflateSync(Buffer.from([1, 2])) })), /inflates to more than the 1 bytes/);
  await assert.rejects(decodeFrame(frame({ encoding: Encoding.ZLIB_RGBA8, width: 1, height: 1, payload: [1, 2, 3, 4, 5, 6] })), /compressed payload is damaged/);
  await assert.rejects(inflateInto(new Uint8Array([0x78]), 4), /damaged|inflates to 0 bytes/);
});
