//! The seven FER2013 expression classes and the image geometry every dataset shares.

/// Side of every face image in pixels.
pub const IMAGE_SIDE: usize = 48;
/// Pixels per face image (48 × 48, one grayscale channel).
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of expression classes.
pub const NUM_CLASSES: usize = 7;

/// Class names in sorted folder-name order; a label is an index into this list.
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
];

/// The FER2013 CSV numbers its classes 0=angry, 1=disgust, 2=fear, 3=happy, 4=sad, 5=surprise,
/// 6=neutral; this maps a CSV label to its index in [`CLASS_NAMES`].
const CSV_LABEL_TO_CLASS: [u8; NUM_CLASSES] = [0, 1, 2, 3, 5, 6, 4];

/// The class index of a folder name, matched case-insensitively.
pub fn class_index(name: &str) -> Option<u8> {
    CLASS_NAMES
        .iter()
        .position(|class| class.eq_ignore_ascii_case(name))
        .map(|index| index as u8)
}

/// The class index of a FER2013 CSV `emotion` value.
pub fn class_from_csv_label(label: u8) -> Option<u8> {
    CSV_LABEL_TO_CLASS.get(label as usize).copied()
}
