// @ts-check
// `binary_v1` render frames: one binary WebSocket message per rectangle,
// a 24-byte little-endian header then the payload (see PROTOCOL.md; the
// appliance writes it in protocol/frame.rs, `FrameHeader::write`).
//
// | offset | size | field                                             |
// | 0      | 4    | magic "RAPF"                                      |
// | 4      | 1    | version = 1                                       |
// | 5      | 1    | encoding: 0 raw RGBA8, 1 raw gray8, 2 zlib RGBA8, 3 zlib gray8, 4 H.264 access unit, 5 H.264 region |
// | 6      | 1    | color mode: 0 full_color, 1 grayscale             |
// | 7      | 1    | flags: bit 0 = last rectangle of this update; bit 1 = key frame (H.264) |
// | 8      | 4    | sequence number                                   |
// | 12     | 2×4  | x, y, width, height                               |
// | 20     | 4    | payload length                                    |
//
// H.264 (only to a client whose attach listed `"codecs": ["h264"]`):
// encoding 4 carries one Annex B access unit of the host's stream; its
// rectangle is where the decoded picture's top-left goes and the picture's
// size. Marked last, it paints its whole picture; not marked last, it
// paints nothing yet and encoding-5 messages of the same seq follow: each
// an empty payload and a rectangle (screen coordinates, inside the
// picture) to paint from it, the last marked last; a single empty one
// (0 × 0) paints nothing (the unit only advances the decoder). Those are
// decoded in the frame worker (frame-worker.js, video-decoder.js), never
// by `decodeFrame`.
//
// A message that is not exactly such a frame is refused with an Error that
// says why (the viewer shows it once and goes on with the next frame):
// shorter than its header, another magic or version, an encoding or colour
// mode this viewer does not know, a payload longer or shorter than the
// message.

export const HEADER_LEN = 24;
const MAGIC = [0x52, 0x41, 0x50, 0x46]; // "RAPF"
export const VERSION = 1;
export const FLAG_LAST = 0b01;
export const FLAG_KEY_FRAME = 0b10;

export const Encoding = Object.freeze({ RAW_RGBA8: 0, RAW_GRAY8: 1, ZLIB_RGBA8: 2, ZLIB_GRAY8: 3, H264: 4, H264_REGION: 5 });
const COLOR_MODES = ['full_color', 'grayscale'];

/**
 * Whether frames of `encoding` belong to the H.264 stream (an access unit
 * or a region painted from one) rather than carrying pixels.
 * @param {number} encoding
 */
export function isVideo(encoding) {
  return encoding === Encoding.H264 || encoding === Encoding.H264_REGION;
}

/**
 * The 24 header bytes, read (as `FrameHeader::read` does).
 * @typedef {object} HeaderFields
 * @property {number} encoding  an `Encoding` value
 * @property {'full_color' | 'grayscale'} colorMode
 * @property {boolean} last      the last rectangle of this update
 * @property {boolean} keyFrame  an H.264 key frame (flag bit 1)
 * @property {number} seq
 * @property {number} x
 * @property {number} y
 * @property {number} width
 * @property {number} height
 * @property {number} payloadLength
 */

/**
 * A frame's header, with its payload (a view into the message).
 * @typedef {Omit<HeaderFields, 'payloadLength'> & {payload: Uint8Array<ArrayBuffer>}} FrameHeader
 */

/**
 * A decoded frame: its header fields and exactly width × height RGBA8
 * pixels. A frame of width or height 0 paints nothing (an H.264 unit that
 * only advances the decoder, or whose regions follow).
 * @typedef {Omit<FrameHeader, 'payload'> & {rgba: Uint8ClampedArray<ArrayBuffer>}} DecodedFrame
 */

/**
 * Reads the 24-byte header at the start of `buffer`, whatever follows it
 * (as the appliance's `FrameHeader::read`); throws on a malformed one.
 * @param {ArrayBuffer} buffer
 * @returns {HeaderFields}
 */
export function readHeader(buffer) {
  if (buffer.byteLength < HEADER_LEN) throw new Error(`frame shorter than its header (${buffer.byteLength} of ${HEADER_LEN} bytes)`);
  const view = new DataView(buffer);
  for (let index = 0; index < 4; index += 1) {
    if (view.getUint8(index) !== MAGIC[index]) throw new Error('frame without the RAPF magic');
  }
  const version = view.getUint8(4);
  if (version !== VERSION) throw new Error(`unknown frame version ${version}`);
  const encoding = view.getUint8(5);
  if (!/** @type {number[]} */ (Object.values(Encoding)).includes(encoding)) throw new Error(`unknown frame encoding ${encoding}`);
  const colorMode = COLOR_MODES[view.getUint8(6)];
  if (!colorMode) throw new Error(`unknown frame color mode ${view.getUint8(6)}`);
  const flags = view.getUint8(7);
  return {
    encoding,
    colorMode: /** @type {'full_color' | 'grayscale'} */ (colorMode),
    last: (flags & FLAG_LAST) !== 0,
    keyFrame: (flags & FLAG_KEY_FRAME) !== 0,
    seq: view.getUint32(8, true),
    x: view.getUint16(12, true),
    y: view.getUint16(14, true),
    width: view.getUint16(16, true),
    height: view.getUint16(18, true),
    payloadLength: view.getUint32(20, true),
  };
}

/**
 * Reads one whole frame message: its header, and its payload, which must
 * fill the rest of the message exactly; throws on a malformed one.
 * @param {ArrayBuffer} buffer  the whole message
 * @returns {FrameHeader}
 */
export function parseHeader(buffer) {
  const { payloadLength, ...header } = readHeader(buffer);
  if (HEADER_LEN + payloadLength > buffer.byteLength) throw new Error('frame payload cut short');
  if (HEADER_LEN + payloadLength < buffer.byteLength) throw new Error(`frame longer than its payload (${buffer.byteLength - HEADER_LEN - payloadLength} bytes after it)`);
  if (header.encoding === Encoding.H264_REGION && payloadLength !== 0) throw new Error(`an H.264 region with a payload (${payloadLength} bytes)`);
  return { ...header, payload: new Uint8Array(buffer, HEADER_LEN, payloadLength) };
}

/**
 * Bytes per pixel of each encoding's (inflated) payload.
 * @param {number} encoding
 */
export function bytesPerPixel(encoding) {
  if (encoding === Encoding.RAW_RGBA8 || encoding === Encoding.ZLIB_RGBA8) return 4;
  if (encoding === Encoding.RAW_GRAY8 || encoding === Encoding.ZLIB_GRAY8) return 1;
  throw new Error(`unknown frame encoding ${encoding}`);
}

/**
 * Inflates a zlib stream (RFC 1950) with the browser's own decoder straight
 * into a buffer of the `expected` size (width × height × bytes per pixel):
 * no list of chunks to join, no copy at the end. Throws when the stream
 * inflates to more or fewer bytes, or is not a valid zlib stream.
 * @param {Uint8Array<ArrayBuffer>} bytes
 * @param {number} expected
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
export async function inflateInto(bytes, expected) {
  const out = new Uint8Array(expected);
  const stream = new DecompressionStream('deflate');
  const writer = stream.writable.getWriter();
  // Their failures surface again, as the reader's.
  writer.write(bytes).catch(() => {});
  writer.close().catch(() => {});
  const reader = stream.readable.getReader();
  let offset = 0;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      throw new Error(`the compressed payload is damaged (${error?.message ?? error})`);
    }
    if (chunk.done) break;
    const { value } = chunk;
    if (offset + value.length > expected) {
      reader.cancel().catch(() => {});
      throw new Error(`the payload inflates to more than the ${expected} bytes its size calls for`);
    }
    out.set(value, offset);
    offset += value.length;
  }
  if (offset !== expected) throw new Error(`the payload inflates to ${offset} bytes instead of ${expected}`);
  return out;
}

// Gray expands to RGBA 4 bytes at a time where the platform is little-endian
// (every browser platform in practice); byte by byte otherwise.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Gray8 pixels as RGBA8 (opaque).
 * @param {Uint8Array} gray
 * @param {number} pixels
 */
export function grayToRgba(gray, pixels) {
  const rgba = new Uint8ClampedArray(pixels * 4);
  if (LITTLE_ENDIAN) {
    const words = new Uint32Array(rgba.buffer);
    for (let index = 0; index < pixels; index += 1) words[index] = 0xff000000 | (gray[index] * 0x010101);
    return rgba;
  }
  for (let index = 0, out = 0; index < pixels; index += 1, out += 4) {
    const value = gray[index];
    rgba[out] = value;
    rgba[out + 1] = value;
    rgba[out + 2] = value;
    rgba[out + 3] = 255;
  }
  return rgba;
}

/**
 * Decodes one pixel frame message (encodings 0–3) into `{x, y, width, height, seq, last,
 * keyFrame, colorMode, encoding, rgba}` where `rgba` holds exactly
 * width×height RGBA8 pixels (for raw RGBA8, a view into `buffer`). Throws
 * (rejects) on a malformed frame, including a payload of the wrong size.
 * @param {ArrayBuffer} buffer
 * @returns {Promise<DecodedFrame>}
 */
export async function decodeFrame(buffer) {
  const header = parseHeader(buffer);
  const { encoding, width, height } = header;
  if (isVideo(encoding)) throw new Error('H.264 frames are decoded in the frame worker only (this browser started none)');
  const pixels = width * height;
  const expected = pixels * bytesPerPixel(encoding);
  let bytes = header.payload;
  if (encoding === Encoding.ZLIB_RGBA8 || encoding === Encoding.ZLIB_GRAY8) {
    bytes = await inflateInto(bytes, expected);
  } else if (bytes.length < expected) {
    throw new Error(`the payload holds ${bytes.length} bytes, short of the ${expected} its size calls for`);
  } else if (bytes.length > expected) {
    throw new Error(`the payload holds ${bytes.length} bytes, more than the ${expected} its size calls for`);
  }
  const rgba = bytesPerPixel(encoding) === 4 ? new Uint8ClampedArray(bytes.buffer, bytes.byteOffset, expected) : grayToRgba(bytes, pixels);
  const { payload, ...rest } = header;
  void payload;
  return { ...rest, rgba };
}
