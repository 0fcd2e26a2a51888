//! The window `fer live` shows its annotated frames in: a pixel buffer on screen (minifb),
//! opened with the first frame's size, closed by its close button or Esc.

use image::RgbImage;
use minifb::{Key, ScaleMode, WindowOptions};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WindowError {
    #[error(
        "no display to open a window on ({reason}): run with `--no-window --record DIR` to write \
         the annotated frames to a folder instead"
    )]
    NoDisplay { reason: String },
    #[error("the window stopped taking frames: {0}")]
    Update(String),
}

pub struct Window {
    title: String,
    window: Option<minifb::Window>,
    pixels: Vec<u32>,
}

impl Window {
    /// A window titled `title`, shown with the first frame; refused at once where there is no
    /// display to show it on.
    pub fn new(title: &str) -> Result<Self, WindowError> {
        if cfg!(all(unix, not(target_os = "macos"))) && std::env::var_os("DISPLAY").is_none() {
            return Err(WindowError::NoDisplay {
                reason: "DISPLAY is not set".into(),
            });
        }
        Ok(Window {
            title: title.to_string(),
            window: None,
            pixels: Vec::new(),
        })
    }

    /// Shows `frame`; false once the person has closed the window or pressed Esc.
    pub fn show(&mut self, frame: &RgbImage) -> Result<bool, WindowError> {
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        let window = match &mut self.window {
            Some(window) => window,
            None => {
                let options = WindowOptions {
                    resize: true,
                    scale_mode: ScaleMode::AspectRatioStretch,
                    ..WindowOptions::default()
                };
                let window =
                    minifb::Window::new(&self.title, width, height, options).map_err(|error| {
                        WindowError::NoDisplay {
                            reason: error.to_string(),
                        }
                    })?;
                self.window.insert(window)
            }
        };
        // minifb takes 0RGB words.
        self.pixels.clear();
        self.pixels.extend(
            frame
                .pixels()
                .map(|pixel| u32::from_be_bytes([0, pixel[0], pixel[1], pixel[2]])),
        );
        window
            .update_with_buffer(&self.pixels, width, height)
            .map_err(|error| WindowError::Update(error.to_string()))?;
        Ok(window.is_open() && !window.is_key_down(Key::Escape))
    }
}
