//! The little of H.264 a viewer reads before decoding: NAL unit types (is
//! this access unit a key frame?) and the `avc1.PPCCLL` codec string of a
//! stream from its sequence parameter set, which a WebCodecs
//! `VideoDecoder` is configured with. Annex B byte streams only, as
//! `binary_v1` encoding 4 carries them.

/// `nal_unit_type` of an IDR slice: a picture decodable on its own.
pub const NAL_IDR: u8 = 5;
/// `nal_unit_type` of a sequence parameter set.
pub const NAL_SPS: u8 = 7;

/// The NAL units of an Annex B stream, without their start codes.
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = stream;
    std::iter::from_fn(move || {
        let start = start_code_end(rest)?;
        rest = &rest[start..];
        let next = find_start_code(rest).unwrap_or(rest.len());
        let (unit, after) = rest.split_at(next);
        rest = after;
        // Trailing zero bytes belong to the next start code, not the unit.
        let end = unit.iter().rposition(|byte| *byte != 0).map_or(0, |last| last + 1);
        Some(&unit[..end])
    })
    .filter(|unit| !unit.is_empty())
}

/// The index just past the first start code (`00 00 01` or `00 00 00 01`).
fn start_code_end(bytes: &[u8]) -> Option<usize> {
    find_start_code(bytes).map(|at| at + 3)
}

/// The index of the first `00 00 01`.
fn find_start_code(bytes: &[u8]) -> Option<usize> {
    bytes.windows(3).position(|window| window == [0, 0, 1])
}

pub fn nal_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|header| header & 0x1f)
}

/// Whether the access unit holds an IDR slice.
pub fn is_key_frame(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|unit| nal_type(unit) == Some(NAL_IDR))
}

/// `avc1.` + profile, constraint flags and level of the stream's SPS, as
/// hex: what `VideoDecoder.configure` and `isConfigSupported` take.
pub fn codec_string(access_unit: &[u8]) -> Option<String> {
    let sps = nal_units(access_unit).find(|unit| nal_type(unit) == Some(NAL_SPS))?;
    let [_, profile, constraints, level, ..] = *sps else { return None };
    Some(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
}

/// An Annex B copy of a stream in AVC form (4-byte big-endian lengths, as
/// some RDP servers send); `None` if it is not well-formed AVC.
pub fn avc_to_annex_b(stream: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(stream.len() + 16);
    let mut rest = stream;
    while !rest.is_empty() {
        let (length, after) = rest.split_first_chunk::<4>()?;
        let length = usize::try_from(u32::from_be_bytes(*length)).ok()?;
        if length == 0 || length > after.len() {
            return None;
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&after[..length]);
        rest = &after[length..];
    }
    Some(out)
}

/// `stream` as Annex B: itself when it already starts with a start code.
pub fn annex_b(stream: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    if stream.starts_with(&[0, 0, 1]) || stream.starts_with(&[0, 0, 0, 1]) {
        Some(std::borrow::Cow::Borrowed(stream))
    } else {
        avc_to_annex_b(stream).map(std::borrow::Cow::Owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPS (High profile, level 3.2), PPS, IDR slice: the shape of a key
    /// frame from FreeRDP's shadow server.
    const KEY: &[u8] =
        &[0, 0, 0, 1, 0x67, 0x64, 0x00, 0x20, 0xac, 0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0, 0, 1, 0x65, 0x88, 0x84, 0x00];
    const DELTA: &[u8] = &[0, 0, 0, 1, 0x41, 0x9a, 0x02, 0, 0, 1, 0x41, 0x9b];

    #[test]
    fn key_frames_are_told_from_the_nal_types() {
        let types: Vec<_> = nal_units(KEY).filter_map(nal_type).collect();
        assert_eq!(types, [7, 8, 5]);
        assert!(is_key_frame(KEY));
        assert!(!is_key_frame(DELTA));
        assert!(!is_key_frame(&[]));
        assert!(!is_key_frame(&[0, 0, 1]), "a start code with nothing after it");
        assert_eq!(
            nal_units(&[0, 0, 0, 1, 0x65, 0xb8, 0, 0, 0, 0, 1, 0x41]).collect::<Vec<_>>(),
            [&[0x65, 0xb8][..], &[0x41]]
        );
    }

    #[test]
    fn the_codec_string_comes_from_the_sps() {
        assert_eq!(codec_string(KEY).as_deref(), Some("avc1.640020"));
        assert_eq!(codec_string(DELTA), None);
        assert_eq!(codec_string(&[0, 0, 1, 0x67, 0x42]), None, "a cut SPS");
    }

    #[test]
    fn avc_length_prefixes_become_start_codes() {
        let avc = [0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x41];
        assert_eq!(avc_to_annex_b(&avc).expect("well formed"), [0, 0, 0, 1, 0x65, 0x88, 0, 0, 0, 1, 0x41]);
        assert_eq!(avc_to_annex_b(&[0, 0, 0, 9, 1]), None, "a length past the end");
        assert_eq!(avc_to_annex_b(&[0, 0, 0, 0]), None, "an empty unit");
        assert!(matches!(annex_b(KEY), Some(std::borrow::Cow::Borrowed(_))));
        assert_eq!(annex_b(&avc).expect("converted").as_ref(), avc_to_annex_b(&avc).expect("same").as_slice());
    }
}
