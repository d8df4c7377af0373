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

/** Inflates a zlib stream (RFC 1950) with the browser's own decoder. */
export async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Gray8 pixels as RGBA8. */
export function grayToRgba(gray, pixels) {
  const rgba = new Uint8ClampedArray(pixels * 4);
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
 * colorMode, rgba}` where `rgba` holds width×height RGBA8 pixels.
 */
export async function decodeFrame(buffer) {
  const header = parseHeader(buffer);
  const { encoding, width, height } = header;
  const pixels = width * height;
  let bytes = header.payload;
  if (encoding === Encoding.ZLIB_RGBA8 || encoding === Encoding.ZLIB_GRAY8) bytes = await inflate(bytes);
  let rgba;
  if (encoding === Encoding.RAW_RGBA8 || encoding === Encoding.ZLIB_RGBA8) {
    if (bytes.length < pixels * 4) throw new Error('RGBA payload too short');
    rgba = new Uint8ClampedArray(bytes.buffer, bytes.byteOffset, pixels * 4);
  } else if (encoding === Encoding.RAW_GRAY8 || encoding === Encoding.ZLIB_GRAY8) {
    if (bytes.length < pixels) throw new Error('gray payload too short');
    rgba = grayToRgba(bytes, pixels);
  } else {
    throw new Error(`unknown frame encoding ${encoding}`);
  }
  const { payload, ...rest } = header;
  void payload;
  return { ...rest, rgba };
}
