//! What FER2013 is: 48 × 48 grey faces in seven expression classes. The CSV and the synthetic
//! faces keep these; class folders bring their own classes.

/// Side of a FER2013 face in pixels.
pub const SIDE: usize = 48;
/// Pixels per FER2013 face (48 × 48, one grey channel), as a CSV row holds them.
pub const PIXELS: usize = SIDE * SIDE;

/// The classes in sorted folder-name order (the Kaggle layout's folders); a label indexes this.
pub const CLASS_NAMES: [&str; 7] = [
    "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
];

/// The FER2013 CSV numbers its classes 0=angry, 1=disgust, 2=fear, 3=happy, 4=sad, 5=surprise,
/// 6=neutral; this maps a CSV label to its index in [`CLASS_NAMES`].
const CSV_LABEL_TO_CLASS: [u8; CLASS_NAMES.len()] = [0, 1, 2, 3, 5, 6, 4];

/// [`CLASS_NAMES`] as a dataset holds its names.
pub fn class_names() -> Vec<String> {
    CLASS_NAMES.map(String::from).to_vec()
}

/// The class index of a FER2013 CSV `emotion` value.
pub fn class_from_csv_label(label: u8) -> Option<u8> {
    CSV_LABEL_TO_CLASS.get(label as usize).copied()
}
