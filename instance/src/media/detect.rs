//! What an upload is, from its first bytes only. The client's content type and file name
//! are never trusted: a file is processed, stored and served as the format it really starts
//! as, and anything this table does not know is refused.

/// The broad kind, which decides how an upload is processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Decoded and re-encoded here, synchronously.
    Image,
    /// Kept as uploaded for the worker, which transcodes it (Mastodon's async media).
    Video,
    Audio,
}

impl Kind {
    /// The `type` of the MediaAttachment entity.
    pub fn entity_type(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Video => "video",
            Kind::Audio => "audio",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
    Mp4,
    Quicktime,
    Webm,
    Mp3,
    Ogg,
    Wav,
    Flac,
    Aac,
    M4a,
}

impl Format {
    pub const ALL: [Format; 13] = [
        Format::Jpeg,
        Format::Png,
        Format::Gif,
        Format::Webp,
        Format::Mp4,
        Format::Quicktime,
        Format::Webm,
        Format::Mp3,
        Format::Ogg,
        Format::Wav,
        Format::Flac,
        Format::Aac,
        Format::M4a,
    ];

    pub fn kind(self) -> Kind {
        match self {
            Format::Jpeg | Format::Png | Format::Gif | Format::Webp => Kind::Image,
            Format::Mp4 | Format::Quicktime | Format::Webm => Kind::Video,
            // An Ogg file may hold Theora video; Mastodon files it under audio too, and the
            // worker's probe corrects the type.
            Format::Mp3 | Format::Ogg | Format::Wav | Format::Flac | Format::Aac | Format::M4a => {
                Kind::Audio
            }
        }
    }

    /// The content type the file is stored and served with.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
            Format::Mp4 => "video/mp4",
            Format::Quicktime => "video/quicktime",
            Format::Webm => "video/webm",
            Format::Mp3 => "audio/mpeg",
            Format::Ogg => "audio/ogg",
            Format::Wav => "audio/wav",
            Format::Flac => "audio/flac",
            Format::Aac => "audio/aac",
            Format::M4a => "audio/mp4",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Mp4 => "mp4",
            Format::Quicktime => "mov",
            Format::Webm => "webm",
            Format::Mp3 => "mp3",
            Format::Ogg => "ogg",
            Format::Wav => "wav",
            Format::Flac => "flac",
            Format::Aac => "aac",
            Format::M4a => "m4a",
        }
    }

    /// A human name for error messages.
    pub fn label(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::Gif => "GIF",
            Format::Webp => "WebP",
            Format::Mp4 => "MP4",
            Format::Quicktime => "QuickTime",
            Format::Webm => "WebM",
            Format::Mp3 => "MP3",
            Format::Ogg => "Ogg",
            Format::Wav => "WAV",
            Format::Flac => "FLAC",
            Format::Aac => "AAC",
            Format::M4a => "M4A",
        }
    }
}

/// Other names clients give to formats that are accepted: the instance advertises them in
/// `supported_mime_types` (Mastodon's list), since clients filter files by their own idea
/// of the type before uploading.
pub const MIME_ALIASES: &[(&str, Format)] = &[
    ("audio/mp3", Format::Mp3),
    ("audio/vorbis", Format::Ogg),
    ("audio/wave", Format::Wav),
    ("audio/x-wav", Format::Wav),
    ("audio/m4a", Format::M4a),
    ("audio/x-m4a", Format::M4a),
    // An audio-only WebM is still a WebM; the worker's probe tells audio from video.
    ("audio/webm", Format::Webm),
];

/// ISO base media (`ftyp`) brands of video files. HEIF and AVIF images share the container
/// and are not among them: they are images this server cannot decode.
const MP4_BRANDS: &[&[u8; 4]] = &[
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash",
    b"M4V ", b"M4VH", b"M4VP", b"mmp4", b"f4v ", b"MSNV",
];
const M4A_BRANDS: &[&[u8; 4]] = &[b"M4A ", b"M4B "];
const IMAGE_BRANDS: &[&[u8; 4]] = &[
    b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
];

pub fn detect(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some(Format::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(Format::Png);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some(Format::Gif);
    }
    if bytes.len() >= 12 && bytes.starts_with(b"RIFF") {
        return match &bytes[8..12] {
            b"WEBP" => Some(Format::Webp),
            b"WAVE" => Some(Format::Wav),
            _ => None,
        };
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return iso_media(bytes);
    }
    if bytes.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        // Matroska in general is not accepted (nor by Mastodon): only its WebM profile.
        let head = &bytes[..bytes.len().min(64)];
        return head
            .windows(7)
            .any(|w| w == b"\x42\x82\x84webm")
            .then_some(Format::Webm);
    }
    if bytes.starts_with(b"OggS") {
        return Some(Format::Ogg);
    }
    if bytes.starts_with(b"fLaC") {
        return Some(Format::Flac);
    }
    if bytes.starts_with(b"ID3") {
        return Some(Format::Mp3);
    }
    if bytes.len() >= 4 && bytes[0] == 0xff {
        return mpeg_audio_frame(bytes);
    }
    None
}

fn iso_media(bytes: &[u8]) -> Option<Format> {
    let size = u32::from_be_bytes(bytes[0..4].try_into().ok()?) as usize;
    let major: &[u8; 4] = bytes[8..12].try_into().ok()?;
    // The compatible brands follow the minor version, to the end of the box.
    let end = size.clamp(16, bytes.len().min(256));
    let compatible: Vec<&[u8; 4]> = bytes
        .get(16..end)
        .unwrap_or_default()
        .chunks_exact(4)
        .filter_map(|c| c.try_into().ok())
        .collect();
    if IMAGE_BRANDS.contains(&major) {
        return None;
    }
    if M4A_BRANDS.contains(&major) {
        return Some(Format::M4a);
    }
    if major == b"qt  " {
        return Some(Format::Quicktime);
    }
    if MP4_BRANDS.contains(&major) || compatible.iter().any(|b| MP4_BRANDS.contains(b)) {
        return Some(Format::Mp4);
    }
    None
}

/// An MPEG audio frame header (MP3 and its layers) or an AAC ADTS header.
fn mpeg_audio_frame(bytes: &[u8]) -> Option<Format> {
    let (b1, b2) = (bytes[1], bytes[2]);
    if b1 & 0xf6 == 0xf0 {
        // ADTS: 12 sync bits, then layer 00; the sampling index 13-15 is reserved.
        return ((b2 >> 2) & 0x0f < 13).then_some(Format::Aac);
    }
    let sync = b1 & 0xe0 == 0xe0;
    let version_ok = (b1 >> 3) & 0x03 != 0x01;
    let layer_ok = (b1 >> 1) & 0x03 != 0x00;
    let bitrate_ok = b2 >> 4 != 0x0f;
    let rate_ok = (b2 >> 2) & 0x03 != 0x03;
    (sync && version_ok && layer_ok && bitrate_ok && rate_ok).then_some(Format::Mp3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_magic_bytes_only() {
        let cases: &[(&[u8], Option<Format>)] = &[
            (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", Some(Format::Jpeg)),
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", Some(Format::Png)),
            (b"GIF87a\x01\x00\x01\x00", Some(Format::Gif)),
            (b"GIF89a\x01\x00\x01\x00", Some(Format::Gif)),
            (b"RIFF\x10\x00\x00\x00WEBPVP8 ", Some(Format::Webp)),
            (b"RIFF\x10\x00\x00\x00WAVEfmt ", Some(Format::Wav)),
            (b"RIFF\x10\x00\x00\x00AVI LIST", None),
            (
                b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
                Some(Format::Mp4),
            ),
            (
                b"\x00\x00\x00\x14ftypXAVC\x00\x00\x00\x00isom",
                Some(Format::Mp4),
            ),
            (
                b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ",
                Some(Format::Quicktime),
            ),
            (
                b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom",
                Some(Format::M4a),
            ),
            // HEIF and AVIF images: the same container, not a video, not decodable here.
            (
                b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf",
                None,
            ),
            (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", None),
            (
                b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87",
                Some(Format::Webm),
            ),
            (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska", None),
            (b"OggS\x00\x02\x00\x00", Some(Format::Ogg)),
            (b"fLaC\x00\x00\x00\x22", Some(Format::Flac)),
            (b"ID3\x04\x00\x00\x00\x00", Some(Format::Mp3)),
            (b"\xff\xfb\x90\x64\x00", Some(Format::Mp3)),
            (b"\xff\xf1\x50\x80\x00", Some(Format::Aac)),
            (b"\xff\xff\xff\xff\xff", None),
            (b"%PDF-1.7\n%\xe2\xe3", None),
            (b"PK\x03\x04\x14\x00\x00\x00", None),
            (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
            (b"<!DOCTYPE html><script>alert(1)</script>", None),
            (b"{\"type\":\"Person\"}", None),
            (b"BM\x36\x00\x00\x00", None),
            (b"II*\x00\x08\x00\x00\x00", None),
            (b"\xff\xd8", None),
            (b"", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(detect(bytes), *want, "{bytes:?}");
        }
    }

    #[test]
    fn every_format_has_a_consistent_description() {
        for f in Format::ALL {
            let (top, _) = f.mime().split_once('/').unwrap();
            let want = match f.kind() {
                Kind::Image => "image",
                Kind::Video => "video",
                Kind::Audio => "audio",
            };
            assert_eq!(top, want, "{f:?}");
            assert_eq!(f.kind().entity_type(), want);
            assert!(!f.extension().is_empty() && !f.label().is_empty());
        }
    }
}
