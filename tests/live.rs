//! `fer live` as a person runs it: on a video and on a folder of frames made from a photo with
//! faces, recorded without a window, in a window on an X server (Xvfb) seen by a screenshot,
//! and refusing bad sources in one sentence.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};

mod common;
use common::{fer, refused, rustface_photo, scratch, succeeded, text, trained_softmax};

/// The colour annotate.rs draws boxes, label backgrounds and bars in (the photo, black and
/// white, has none of it).
const BOX_COLOUR: Rgb<u8> = Rgb([0, 220, 80]);

/// Frames panning across the crowd of the `rustface` photo: `count` crops of `width` ×
/// `height`, each `step` pixels right of the one before.
fn panning_frames(count: u32, (width, height): (u32, u32), step: u32) -> Vec<RgbImage> {
    let photo = image::open(rustface_photo())
        .expect("the rustface photo")
        .to_rgb8();
    // The faces sit in the top band of the photo, rows ~30 to ~340.
    (0..count)
        .map(|n| image::imageops::crop_imm(&photo, 100 + n * step, 0, width, height).to_image())
        .collect()
}

/// `frames` as a YUV4MPEG2 video the way ffmpeg writes one: 4:2:0 (each chroma sample the
/// mean of a 2×2 block), BT.601 studio range.
fn write_y4m(path: &Path, frames: &[RgbImage]) {
    let (width, height) = frames[0].dimensions();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(file, "YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg").unwrap();
    let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
    for frame in frames {
        let [r, g, b] = [0, 1, 2].map(|c| move |x: u32, y: u32| frame.get_pixel(x, y)[c] as f64);
        let luma = |x, y| 0.299 * r(x, y) + 0.587 * g(x, y) + 0.114 * b(x, y);
        let mut planes = vec![Vec::new(), Vec::new(), Vec::new()];
        for y in 0..height {
            for x in 0..width {
                planes[0].push((16.0 + luma(x, y) * 219.0 / 255.0).round() as u8);
            }
        }
        for cy in 0..chroma_height {
            for cx in 0..chroma_width {
                let block: Vec<(u32, u32)> = [(0, 0), (1, 0), (0, 1), (1, 1)]
                    .iter()
                    .map(|(dx, dy)| ((2 * cx + dx).min(width - 1), (2 * cy + dy).min(height - 1)))
                    .collect();
                let mean = |f: &dyn Fn(u32, u32) -> f64| {
                    block.iter().map(|&(x, y)| f(x, y)).sum::<f64>() / 4.0
                };
                let cb = mean(&|x, y| (b(x, y) - luma(x, y)) / 1.772);
                let cr = mean(&|x, y| (r(x, y) - luma(x, y)) / 1.402);
                planes[1].push((128.0 + cb * 224.0 / 255.0).round() as u8);
                planes[2].push((128.0 + cr * 224.0 / 255.0).round() as u8);
            }
        }
        file.write_all(b"FRAME\n").unwrap();
        for plane in planes {
            file.write_all(&plane).unwrap();
        }
    }
}

fn box_pixels(image: &RgbImage) -> usize {
    image.pixels().filter(|&&pixel| pixel == BOX_COLOUR).count()
}

/// The faces the summary line counts, after checking it counted `frames` frames.
fn faces_in_summary(summary: &str, frames: usize) -> usize {
    let line = summary.lines().last().unwrap_or_default();
    assert!(line.starts_with(&format!("{frames} frames, ")), "{summary}");
    line.split(", ")
        .nth(1)
        .and_then(|faces| faces.strip_suffix(" faces"))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no face count in: {summary}"))
}

/// `recorded` holds one annotated PNG per source frame, each the frame with boxes drawn on it
/// and, outside what was drawn, the frame's own pixels (so the video decoded to its colours).
fn check_recording(recorded: &Path, frames: &[RgbImage], tolerance: u8) {
    let names: Vec<String> = std::fs::read_dir(recorded)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), frames.len(), "{names:?}");
    for (n, frame) in frames.iter().enumerate() {
        let path = recorded.join(format!("frame-{:06}.png", n + 1));
        let drawn = image::open(&path).expect("a recorded PNG").to_rgb8();
        assert_eq!(drawn.dimensions(), frame.dimensions());
        assert_eq!(box_pixels(frame), 0);
        assert!(
            box_pixels(&drawn) > 1000,
            "{} box pixels",
            box_pixels(&drawn)
        );
        let close = drawn
            .pixels()
            .zip(frame.pixels())
            .filter(|(a, b)| (0..3).all(|c| a[c].abs_diff(b[c]) <= tolerance))
            .count();
        let share = close as f64 / frame.len() as f64 * 3.0;
        assert!(
            share > 0.7,
            "{path:?}: only {share:.2} of the pixels are the frame's"
        );
    }
}

fn live(args: &[&str]) -> Output {
    let checkpoint = text(&trained_softmax());
    let mut all = vec!["--no-autotune", "live", "--checkpoint", &checkpoint];
    all.extend_from_slice(args);
    fer(&all)
}

#[test]
fn a_video_is_recorded_with_its_faces_boxed() {
    let dir = scratch("video");
    let frames = panning_frames(3, (640, 480), 150);
    let video = dir.join("crowd.y4m");
    write_y4m(&video, &frames);
    let recorded = dir.join("recorded");
    // The photo's faces are 40 to 60 pixels here, under live's default smallest face (80).
    let out = succeeded(&live(&[
        "--video",
        &text(&video),
        "--no-window",
        "--min-face",
        "40",
        "--record",
        &text(&recorded),
    ]));
    // About ten of the photo's faces are in each crop.
    let faces = faces_in_summary(&out, frames.len());
    assert!((3 * 5..=3 * 20).contains(&faces), "{out}");
    // The detector's window is the smallest face there is.
    refused(
        &live(&["--video", &text(&video), "--min-face", "39"]),
        &["--min-face", "at least 40"],
    );
    // Studio-range 4:2:0 and back: the grey photo's pixels within rounding (±1 each way).
    check_recording(&recorded, &frames, 3);

    // --max-frames stops early.
    let out = succeeded(&live(&[
        "--video",
        &text(&video),
        "--no-window",
        "--max-frames",
        "2",
    ]));
    faces_in_summary(&out, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_folder_of_frames_is_recorded_in_name_order_skipping_other_files() {
    let dir = scratch("frames");
    let frames = panning_frames(3, (480, 360), 200);
    let folder = dir.join("frames");
    std::fs::create_dir_all(&folder).unwrap();
    // Names that sort differently as numbers and as text: 10 comes before 9 by name.
    for (frame, name) in frames.iter().zip(["10.png", "11.png", "9.png"]) {
        frame.save(folder.join(name)).unwrap();
    }
    std::fs::write(folder.join("notes.txt"), "not a frame").unwrap();
    let recorded = dir.join("recorded");
    let out = live(&[
        "--frames",
        &text(&folder),
        "--no-window",
        "--record",
        &text(&recorded),
    ]);
    let stdout = succeeded(&out);
    assert!(faces_in_summary(&stdout, 3) >= 3, "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipped 1 files"), "{stderr}");
    check_recording(&recorded, &frames, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_sources_are_refused_in_one_sentence() {
    let dir = scratch("bad");
    let frames = panning_frames(1, (320, 240), 0);
    let video = dir.join("one.y4m");
    write_y4m(&video, &frames);

    if cfg!(feature = "camera") {
        refused(&live(&["--camera", "99", "--no-window"]), &["camera 99"]);
    } else {
        refused(
            &live(&["--camera", "0", "--no-window"]),
            &["camera feature", "cargo build --release --features camera"],
        );
    }

    let missing = dir.join("missing.y4m");
    refused(
        &live(&["--video", &text(&missing), "--no-window"]),
        &[&text(&missing)],
    );
    let mp4 = dir.join("clip.mp4");
    std::fs::write(&mp4, b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41").unwrap();
    refused(
        &live(&["--video", &text(&mp4), "--no-window"]),
        &[&text(&mp4), "YUV4MPEG2", "ffmpeg"],
    );
    let c411 = dir.join("c411.y4m");
    std::fs::write(&c411, b"YUV4MPEG2 W320 H240 F25:1 C411\nFRAME\n").unwrap();
    refused(
        &live(&["--video", &text(&c411), "--no-window"]),
        &[&text(&c411), "colour space"],
    );

    let header_only = dir.join("header-only.y4m");
    std::fs::write(&header_only, b"YUV4MPEG2 W320 H240 F25:1 C420jpeg\n").unwrap();
    refused(
        &live(&["--video", &text(&header_only), "--no-window"]),
        &[&text(&header_only), "no frames"],
    );

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    refused(
        &live(&["--frames", &text(&empty), "--no-window"]),
        &[&text(&empty), "no files"],
    );
    std::fs::write(empty.join("a.png"), b"not a png").unwrap();
    std::fs::write(empty.join("b.txt"), b"words").unwrap();
    refused(
        &live(&["--frames", &text(&empty), "--no-window"]),
        &[&text(&empty), "no image", "2 files skipped"],
    );

    // A file where the frames' folder should be.
    refused(
        &live(&[
            "--video",
            &text(&video),
            "--no-window",
            "--record",
            &text(&video),
        ]),
        &[&text(&video), "it is a file: --record names a folder"],
    );

    // No X server to show a window on.
    let checkpoint = text(&trained_softmax());
    let headless = Command::new(env!("CARGO_BIN_EXE_fer"))
        .args([
            "live",
            "--checkpoint",
            &checkpoint,
            "--video",
            &text(&video),
        ])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    refused(&headless, &["no display", "--no-window --record DIR"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An X server of our own on a free display number, stopped when dropped.
struct Xvfb {
    server: Child,
    display: String,
}

impl Xvfb {
    /// Xvfb on a free display from :90 (tests of this file running at once each take their
    /// own number), or `None` where Xvfb does not start.
    fn start(size: (u32, u32)) -> Option<Xvfb> {
        static NEXT: AtomicU32 = AtomicU32::new(90);
        let number = std::iter::from_fn(|| Some(NEXT.fetch_add(1, Ordering::Relaxed)))
            .take_while(|&n| n < 1000)
            .find(|n| {
                !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })?;
        let server = Command::new("Xvfb")
            .arg(format!(":{number}"))
            .args(["-screen", "0", &format!("{}x{}x24", size.0, size.1)])
            .args(["-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let xvfb = Xvfb {
            server,
            display: format!(":{number}"),
        };
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
        let start = Instant::now();
        while !socket.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "Xvfb did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(xvfb)
    }

    /// The whole screen, through `xwd`.
    fn screenshot(&self) -> RgbImage {
        let out = Command::new("xwd")
            .args(["-root", "-silent", "-display", &self.display])
            .output()
            .expect("xwd (x11-apps) runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        decode_xwd(&out.stdout)
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM, so the server removes its socket and lock file (Child::kill's SIGKILL leaves
        // them behind, using up display numbers).
        let _ = Command::new("kill")
            .args(["-TERM", &self.server.id().to_string()])
            .status();
        let _ = self.server.wait();
    }
}

/// An X window dump (XWD version 7) of a 24- or 32-bit TrueColor screen as RGB.
fn decode_xwd(bytes: &[u8]) -> RgbImage {
    let field = |n: usize| u32::from_be_bytes(bytes[4 * n..4 * n + 4].try_into().unwrap());
    let (header_size, version) = (field(0) as usize, field(1));
    assert_eq!(version, 7, "an XWD version 7 dump");
    let (width, height) = (field(4), field(5));
    let little_endian = field(7) == 0;
    let bytes_per_pixel = field(11) as usize / 8;
    let bytes_per_line = field(12) as usize;
    let masks = [field(14), field(15), field(16)];
    let colours = field(19) as usize;
    assert_eq!(bytes_per_pixel, 4, "32 bits per pixel");
    let pixels = &bytes[header_size + 12 * colours..];
    RgbImage::from_fn(width, height, |x, y| {
        let at = y as usize * bytes_per_line + x as usize * bytes_per_pixel;
        let word: [u8; 4] = pixels[at..at + 4].try_into().unwrap();
        let value = match little_endian {
            true => u32::from_le_bytes(word),
            false => u32::from_be_bytes(word),
        };
        Rgb(masks.map(|mask| ((value & mask) >> mask.trailing_zeros()) as u8))
    })
}

/// `fer live` in a window on a fresh Xvfb screen of `screen` size, playing a video of `frames`;
/// the last screenshot taken while it ran that shows the boxes, or `None` without Xvfb.
fn screenshot_of_live_window(
    name: &str,
    screen: (u32, u32),
    frames: &[RgbImage],
) -> Option<RgbImage> {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("Xvfb").exists()));
    if !on_path {
        assert!(
            std::env::var_os("CI").is_none(),
            "Xvfb is not installed: CI must install xvfb and x11-apps (see .ci/run)"
        );
        eprintln!("Xvfb is not on PATH: the window under a real X server is not checked");
        return None;
    }
    let dir = scratch(name);
    let video = dir.join("crowd.y4m");
    write_y4m(&video, frames);
    let xvfb = Xvfb::start(screen).expect("Xvfb starts");
    let checkpoint = text(&trained_softmax());
    let mut live = Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(["--no-autotune", "live", "--checkpoint", &checkpoint])
        .args(["--video", &text(&video)])
        .env("DISPLAY", &xvfb.display)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut shown = None;
    while live.try_wait().unwrap().is_none() {
        let screen = xvfb.screenshot();
        if box_pixels(&screen) > 1000 {
            shown = Some(screen);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = live.wait_with_output().unwrap();
    let stdout = succeeded(&out);
    faces_in_summary(&stdout, frames.len());
    let _ = std::fs::remove_dir_all(&dir);
    Some(shown.expect("a screenshot of the window with boxes in it while fer live ran"))
}

#[test]
fn the_window_shows_the_frames_with_their_boxes_under_xvfb() {
    // Long enough (36 frames, about 1.5 s here) that a screenshot every 100 ms catches the
    // window drawn even on a loaded machine: 12 frames ran in about half a second, and the
    // test failed once under load, most likely ending between screenshots.
    let frames = panning_frames(36, (480, 360), 25);
    let Some(screen) = screenshot_of_live_window("xvfb", (640, 480), &frames) else {
        return;
    };
    // The window shows a frame of the video, not only the boxes: most of its pixels are grey
    // as the photo is, and the screen around it is Xvfb's black.
    let grey = screen
        .pixels()
        .filter(|pixel| pixel[0] == pixel[1] && pixel[1] == pixel[2] && pixel[0] > 20)
        .count();
    assert!(grey > 480 * 360 / 2, "{grey} grey pixels");
}

/// The screenshot in the README: `cargo test --release --test live -- --ignored readme`
/// writes results/live-screenshot.png.
#[test]
#[ignore]
fn readme_screenshot() {
    let frames = panning_frames(20, (800, 560), 30);
    let screen = screenshot_of_live_window("readme", (800, 560), &frames).expect("Xvfb");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/live-screenshot.png");
    screen.save(&path).unwrap();
    eprintln!("wrote {}", path.display());
}
