// `binary_v1` render frames: one binary WebSocket message per rectangle,
// a 24-byte little-endian header then the payload (see PROTOCOL.md).
//
// | offset | size | field                                             |
// | 0      | 4    | magic "RAPF"                                      |
// | 4      | 1    | version = 1                                       |
// | 5      | 1    | encoding: 0 raw RGBA8, 1 raw gray8, 2 zlib RGBA8, 3 zlib gray8 |
// | 6      | 1    | color mode: 0 full_color, 1 grayscale             |
// | 7      | 1    | flags: bit 0 = last rectangle of this update      |
// | 8      | 4    | sequence number                                   |
// | 12     | 2×4  | x, y, width, height                               |
// | 20     | 4    | payload length                                    |

export const HEADER_LEN = 24;
const MAGIC = [0x52, 0x41, 0x50, 0x46]; // "RAPF"

export const Encoding = Object.freeze({ RAW_RGBA8: 0, RAW_GRAY8: 1, ZLIB_RGBA8: 2, ZLIB_GRAY8: 3 });

/** Reads the header of one frame message; throws on a malformed one. */
export function parseHeader(buffer) {
  if (buffer.byteLength < HEADER_LEN) throw new Error('frame shorter than its header');
  const view = new DataView(buffer);
  for (let index = 0; index < 4; index += 1) {
    if (view.getUint8(index) !== MAGIC[index]) throw new Error('frame without the RAPF magic');
  }
  const version = view.getUint8(4);
  if (version !== 1) throw new Error(`unknown frame version ${version}`);
  const payloadLength = view.getUint32(20, true);
  if (HEADER_LEN + payloadLength > buffer.byteLength) throw new Error('frame payload cut short');
  return {
    encoding: view.getUint8(5),
    colorMode: view.getUint8(6) === 1 ? 'grayscale' : 'full_color',
    last: (view.getUint8(7) & 1) === 1,
    seq: view.getUint32(8, true),
    x: view.getUint16(12, true),
    y: view.getUint16(14, true),
    width: view.getUint16(16, true),
    height: view.getUint16(18, true),
    payload: new Uint8Array(buffer, HEADER_LEN, payloadLength),
  };
}

/** Bytes per pixel of each encoding's (inflated) payload. */
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

/** Gray8 pixels as RGBA8 (opaque). */
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
 * Decodes one frame message into `{x, y, width, height, seq, last,
 * colorMode, encoding, rgba}` where `rgba` holds exactly width×height
 * RGBA8 pixels (for raw RGBA8, a view into `buffer`). Throws (rejects) on a
 * malformed frame, including a payload of the wrong size.
 */
export async function decodeFrame(buffer) {
  const header = parseHeader(buffer);
  const { encoding, width, height } = header;
  const pixels = width * height;
  const expected = pixels * bytesPerPixel(encoding);
  let bytes = header.payload;
  if (encoding === Encoding.ZLIB_RGBA8 || encoding === Encoding.ZLIB_GRAY8) {
    bytes = await inflateInto(bytes, expected);
  } else if (bytes.length < expected) {
    throw new Error(`the payload holds ${bytes.length} bytes, short of the ${expected} its size calls for`);
  }
  const rgba = bytesPerPixel(encoding) === 4 ? new Uint8ClampedArray(bytes.buffer, bytes.byteOffset, expected) : grayToRgba(bytes, pixels);
  const { payload, ...rest } = header;
  void payload;
  return { ...rest, rgba };
}
