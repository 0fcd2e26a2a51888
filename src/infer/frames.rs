//! Where `fer live` gets its pictures: a YUV4MPEG2 video, a folder of images in name order, or
//! (with the `camera` feature) a camera. Each is a [`FrameSource`] handing out RGB frames until
//! it ends; the loop reads it on a thread of its own, so a source need not be `Send` once open.

use std::fs::File;
use std::io::{BufReader, ErrorKind};
use std::path::{Path, PathBuf};

use image::RgbImage;
use thiserror::Error;

use crate::data::open_image;

/// Where frames come from, as the command line names it.
#[derive(Clone, Debug)]
pub enum Source {
    Video(PathBuf),
    Frames(PathBuf),
    Camera(u32),
}

/// Why a source gives no (more) frames: one sentence naming the file, folder or camera.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error(
        "video {path} is not a YUV4MPEG2 (.y4m) video fer reads ({reason}): convert it with \
         `ffmpeg -i {path} -pix_fmt yuv420p video.y4m`"
    )]
    UnsupportedVideo { path: PathBuf, reason: String },
    #[error("video {path} is {width}×{height}, larger than the {MAX_SIDE}×{MAX_SIDE} fer reads")]
    TooLarge {
        path: PathBuf,
        width: usize,
        height: usize,
    },
    #[error("video {0} holds no frames")]
    NoFrames(PathBuf),
    #[error("video {path} is damaged at frame {frame}: {reason}")]
    Damaged {
        path: PathBuf,
        frame: usize,
        reason: String,
    },
    #[error("folder {0} holds no files: give a folder of frames (PNG, JPEG, BMP or GIF)")]
    EmptyFolder(PathBuf),
    #[error("folder {path} holds no image fer reads ({skipped} files skipped, e.g. {example})")]
    NoImages {
        path: PathBuf,
        skipped: usize,
        example: String,
    },
    #[error(
        "fer was built without the camera feature, so --camera {0} has nothing to read it with: \
         rebuild with `cargo build --release --features camera`, or use --video or --frames"
    )]
    NoCameraSupport(u32),
    #[error("camera {index} cannot be opened (is it connected, and not in use by another program?): {reason}")]
    Camera { index: u32, reason: String },
}

/// The longest side of a video frame fer decodes (as for images: a larger header is more likely
/// damage than a video).
const MAX_SIDE: usize = 16384;

/// A stream of frames, read in order until it ends.
pub trait FrameSource {
    /// The next frame, `None` at the end.
    fn next_frame(&mut self) -> Option<Result<RgbImage, FrameError>>;

    /// Whether frames keep coming whether or not they are read (a camera): the loop then takes
    /// the latest rather than every one.
    fn is_live(&self) -> bool {
        false
    }

    /// Files passed over because they are not images (a folder of frames only).
    fn skipped(&self) -> usize {
        0
    }
}

/// Opens `source`: a video's header is read and a folder listed now, so a bad one is refused
/// before anything else starts.
pub fn open(source: &Source) -> Result<Box<dyn FrameSource>, FrameError> {
    Ok(match source {
        Source::Video(path) => Box::new(Y4mVideo::open(path)?),
        Source::Frames(path) => Box::new(FrameFolder::open(path)?),
        Source::Camera(index) => camera::open(*index)?,
    })
}

/// A YUV4MPEG2 video: planes of 8 to 12 bits, 4:2:0, 4:2:2, 4:4:4 or grey, converted to RGB.
pub struct Y4mVideo {
    path: PathBuf,
    decoder: y4m::Decoder<BufReader<File>>,
    colours: YuvLayout,
    frame: usize,
}

impl Y4mVideo {
    pub fn open(path: &Path) -> Result<Self, FrameError> {
        let file = File::open(path).map_err(|reason| FrameError::Unreadable {
            path: path.to_path_buf(),
            reason,
        })?;
        let unsupported = |reason: String| FrameError::UnsupportedVideo {
            path: path.to_path_buf(),
            reason,
        };
        let decoder = y4m::Decoder::new(BufReader::new(file)).map_err(|error| match error {
            y4m::Error::IoError(reason) if reason.kind() != ErrorKind::UnexpectedEof => {
                FrameError::Unreadable {
                    path: path.to_path_buf(),
                    reason,
                }
            }
            y4m::Error::UnknownColorspace => unsupported("a colour space it does not know".into()),
            other => unsupported(format!("its header: {other}")),
        })?;
        let (width, height) = (decoder.get_width(), decoder.get_height());
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(FrameError::TooLarge {
                path: path.to_path_buf(),
                width,
                height,
            });
        }
        let full_range = decoder
            .get_raw_params()
            .split(|&byte| byte == b' ')
            .any(|param| param == b"XCOLORRANGE=FULL");
        let colours = YuvLayout::new(width, height, decoder.get_colorspace(), full_range)
            .ok_or_else(|| unsupported("a colour space it does not know".into()))?;
        Ok(Y4mVideo {
            path: path.to_path_buf(),
            decoder,
            colours,
            frame: 0,
        })
    }
}

impl FrameSource for Y4mVideo {
    fn next_frame(&mut self) -> Option<Result<RgbImage, FrameError>> {
        self.frame += 1;
        match self.decoder.read_frame() {
            Ok(frame) => Some(Ok(self.colours.to_rgb(&frame))),
            // The y4m crate reads a last frame cut short as the end of the video.
            Err(y4m::Error::EOF) if self.frame == 1 => {
                Some(Err(FrameError::NoFrames(self.path.clone())))
            }
            Err(y4m::Error::EOF) => None,
            Err(error) => Some(Err(FrameError::Damaged {
                path: self.path.clone(),
                frame: self.frame,
                reason: error.to_string(),
            })),
        }
    }
}

/// How a video's planes map to RGB pixels.
struct YuvLayout {
    width: usize,
    height: usize,
    /// Log2 of the chroma planes' subsampling across and down (0 for 4:4:4); `None` for grey.
    chroma_shift: Option<(usize, usize)>,
    /// Bits above 8 in each sample (2-byte little-endian samples when > 0).
    extra_bits: usize,
    full_range: bool,
}

impl YuvLayout {
    /// The layout of `colorspace`, if fer knows it.
    fn new(
        width: usize,
        height: usize,
        colorspace: y4m::Colorspace,
        full_range: bool,
    ) -> Option<Self> {
        use y4m::Colorspace::*;
        let chroma_shift = match colorspace {
            Cmono | Cmono12 => None,
            C420 | C420p10 | C420p12 | C420jpeg | C420paldv | C420mpeg2 => Some((1, 1)),
            C422 | C422p10 | C422p12 => Some((1, 0)),
            C444 | C444p10 | C444p12 => Some((0, 0)),
            _ => return None,
        };
        Some(YuvLayout {
            width,
            height,
            chroma_shift,
            extra_bits: colorspace.get_bit_depth().saturating_sub(8),
            full_range,
        })
    }

    /// The frame in RGB: BT.601 (what YUV4MPEG2 writers use for standard-definition and what
    /// ffmpeg assumes when a file does not say), studio range unless the file says full; chroma
    /// taken from the nearest sample.
    fn to_rgb(&self, frame: &y4m::Frame) -> RgbImage {
        let bytes = if self.extra_bits > 0 { 2 } else { 1 };
        let sample = |plane: &[u8], index: usize| -> f32 {
            let at = index * bytes;
            let value = match bytes {
                1 => u16::from(plane.get(at).copied().unwrap_or(0)),
                _ => {
                    let pair = [
                        plane.get(at).copied().unwrap_or(0),
                        plane.get(at + 1).copied().unwrap_or(0),
                    ];
                    u16::from_le_bytes(pair) >> self.extra_bits
                }
            };
            f32::from(value)
        };
        let (y_plane, u_plane, v_plane) = (
            frame.get_y_plane(),
            frame.get_u_plane(),
            frame.get_v_plane(),
        );
        let mut rgb = RgbImage::new(self.width as u32, self.height as u32);
        for (x, y, pixel) in rgb.enumerate_pixels_mut() {
            let (x, y) = (x as usize, y as usize);
            let luma = sample(y_plane, y * self.width + x);
            let (u, v) = match self.chroma_shift {
                None => (128.0, 128.0),
                Some((across, down)) => {
                    let chroma_width = (self.width + (1 << across) - 1) >> across;
                    let index = (y >> down) * chroma_width + (x >> across);
                    (sample(u_plane, index), sample(v_plane, index))
                }
            };
            pixel.0 = bt601(luma, u - 128.0, v - 128.0, self.full_range);
        }
        rgb
    }
}

/// One BT.601 Y'CbCr sample (chroma centred on 0) in 8-bit RGB.
fn bt601(luma: f32, cb: f32, cr: f32, full_range: bool) -> [u8; 3] {
    // Studio range puts black at 16 and white at 235 (chroma ±112): stretch both to full.
    let (luma, cb, cr) = match full_range {
        true => (luma, cb, cr),
        false => (
            (luma - 16.0) * 255.0 / 219.0,
            cb * 255.0 / 224.0,
            cr * 255.0 / 224.0,
        ),
    };
    let channel = |value: f32| value.round().clamp(0.0, 255.0) as u8;
    [
        channel(luma + 1.402 * cr),
        channel(luma - 0.344_136 * cb - 0.714_136 * cr),
        channel(luma + 1.772 * cb),
    ]
}

/// A folder of frames: its files in name order (names starting with a dot left out), each
/// decoded when its turn comes; a file that is not an image is skipped and counted.
pub struct FrameFolder {
    path: PathBuf,
    files: std::vec::IntoIter<PathBuf>,
    shown: usize,
    skipped: Vec<String>,
}

impl FrameFolder {
    pub fn open(path: &Path) -> Result<Self, FrameError> {
        let unreadable = |reason| FrameError::Unreadable {
            path: path.to_path_buf(),
            reason,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && !entry.path().is_dir() {
                files.push(entry.path());
            }
        }
        if files.is_empty() {
            return Err(FrameError::EmptyFolder(path.to_path_buf()));
        }
        files.sort();
        Ok(FrameFolder {
            path: path.to_path_buf(),
            files: files.into_iter(),
            shown: 0,
            skipped: Vec::new(),
        })
    }
}

impl FrameSource for FrameFolder {
    fn next_frame(&mut self) -> Option<Result<RgbImage, FrameError>> {
        for file in self.files.by_ref() {
            match open_image(&file) {
                Ok(image) => {
                    self.shown += 1;
                    return Some(Ok(image.into_rgb8()));
                }
                Err(reason) => self.skipped.push(format!("{}: {reason}", file.display())),
            }
        }
        (self.shown == 0).then(|| {
            Err(FrameError::NoImages {
                path: self.path.clone(),
                skipped: self.skipped.len(),
                example: self.skipped.first().cloned().unwrap_or_default(),
            })
        })
    }

    fn skipped(&self) -> usize {
        self.skipped.len()
    }
}

#[cfg(feature = "camera")]
mod camera {
    use image::RgbImage;
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{CameraIndex, RequestedFormat, RequestedFormatType};
    use nokhwa::Camera;

    use super::{FrameError, FrameSource};

    /// A camera streaming at its highest frame rate, each frame decoded to RGB.
    struct Capture {
        index: u32,
        camera: Camera,
    }

    pub fn open(index: u32) -> Result<Box<dyn FrameSource>, FrameError> {
        let failed = |error: nokhwa::NokhwaError| FrameError::Camera {
            index,
            reason: error.to_string(),
        };
        let format =
            RequestedFormat::new::<RgbFormat>(RequestedFormatType::AbsoluteHighestFrameRate);
        let mut camera = Camera::new(CameraIndex::Index(index), format).map_err(failed)?;
        camera.open_stream().map_err(failed)?;
        Ok(Box::new(Capture { index, camera }))
    }

    impl FrameSource for Capture {
        fn is_live(&self) -> bool {
            true
        }

        fn next_frame(&mut self) -> Option<Result<RgbImage, FrameError>> {
            let failed = |error: nokhwa::NokhwaError| FrameError::Camera {
                index: self.index,
                reason: error.to_string(),
            };
            let frame = self
                .camera
                .frame()
                .and_then(|buffer| buffer.decode_image::<RgbFormat>());
            Some(frame.map_err(failed).and_then(|decoded| {
                let (width, height) = decoded.dimensions();
                RgbImage::from_raw(width, height, decoded.into_raw()).ok_or(FrameError::Camera {
                    index: self.index,
                    reason: "a frame smaller than its size".into(),
                })
            }))
        }
    }
}

#[cfg(not(feature = "camera"))]
mod camera {
    use super::{FrameError, FrameSource};

    pub fn open(index: u32) -> Result<Box<dyn FrameSource>, FrameError> {
        Err(FrameError::NoCameraSupport(index))
    }
}

#[cfg(test)]
mod tests {
    use super::bt601;

    #[test]
    fn studio_and_full_range_samples_map_to_bt601_rgb() {
        assert_eq!(bt601(16.0, 0.0, 0.0, false), [0, 0, 0]);
        assert_eq!(bt601(235.0, 0.0, 0.0, false), [255, 255, 255]);
        assert_eq!(bt601(255.0, 0.0, 0.0, true), [255, 255, 255]);
        // A colour no channel of which clips, against the studio-range matrix as usually
        // printed: R = 1.164 (Y'-16) + 1.596 Cr, G = 1.164 (Y'-16) - 0.392 Cb - 0.813 Cr,
        // B = 1.164 (Y'-16) + 2.017 Cb, i.e. 219.7, 95.8 and 73.9 (±1: rounded coefficients).
        let colour = bt601(128.0, 100.0 - 128.0, 184.0 - 128.0, false);
        for (got, want) in colour.iter().zip([220, 96, 74]) {
            assert!(got.abs_diff(want) <= 1, "{colour:?}");
        }
    }
}
