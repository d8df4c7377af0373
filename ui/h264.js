// @ts-check
// The little of H.264 the viewer reads before decoding (as the appliance's
// wire/src/h264.rs): the NAL units of an Annex B access unit (what
// `binary_v1` encoding 4 carries), their types, and the `avc1.PPCCLL`
// codec string of a stream from its sequence parameter set, which a
// WebCodecs `VideoDecoder` is configured with. Pure: no browser APIs.

/** `nal_unit_type` of an IDR slice: a picture decodable on its own. */
export const NAL_IDR = 5;
/** `nal_unit_type` of a sequence parameter set. */
export const NAL_SPS = 7;

/**
 * The index of the first `00 00 01` in `bytes` at or after `from`; -1 if none.
 * @param {Uint8Array} bytes
 * @param {number} from
 */
function findStartCode(bytes, from) {
  for (let index = from; index + 2 < bytes.length; index += 1) {
    if (bytes[index + 2] > 1) {
      index += 2; // none of the next two positions can start one either
    } else if (bytes[index] === 0 && bytes[index + 1] === 0 && bytes[index + 2] === 1) {
      return index;
    }
  }
  return -1;
}

/**
 * The NAL units of an Annex B stream, without their start codes (views
 * into `stream`; empty units left out).
 * @param {Uint8Array} stream
 * @returns {Uint8Array[]}
 */
export function nalUnits(stream) {
  const units = [];
  let start = findStartCode(stream, 0);
  while (start !== -1) {
    const begin = start + 3;
    const next = findStartCode(stream, begin);
    let end = next === -1 ? stream.length : next;
    // Trailing zero bytes belong to the next start code (`00 00 00 01`), not the unit.
    while (end > begin && stream[end - 1] === 0) end -= 1;
    if (end > begin) units.push(stream.subarray(begin, end));
    start = next;
  }
  return units;
}

/**
 * A NAL unit's type: the low 5 bits of its first byte.
 * @param {Uint8Array} unit
 */
export function nalType(unit) {
  return unit[0] & 0x1f;
}

/**
 * Whether the access unit holds an IDR slice.
 * @param {Uint8Array} accessUnit
 */
export function isKeyFrame(accessUnit) {
  return nalUnits(accessUnit).some((unit) => nalType(unit) === NAL_IDR);
}

/**
 * `avc1.` + profile_idc, the constraint flags and level_idc of the
 * stream's SPS, as hex (`avc1.640020`: High profile, level 3.2); null
 * when the access unit has no SPS, or one cut short.
 * @param {Uint8Array} accessUnit
 * @returns {string | null}
 */
export function codecString(accessUnit) {
  const sps = nalUnits(accessUnit).find((unit) => nalType(unit) === NAL_SPS);
  if (!sps || sps.length < 4) return null;
  const hex = (/** @type {number} */ byte) => byte.toString(16).padStart(2, '0');
  return `avc1.${hex(sps[1])}${hex(sps[2])}${hex(sps[3])}`;
}
