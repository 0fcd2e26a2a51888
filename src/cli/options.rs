//! Value parsers for the numeric options. Each refuses what cannot make sense (a batch of 0, a
//! negative or NaN rate) in one sentence, which clap prefixes with the option's name, so a bad
//! option stops the command before any data is loaded or any GPU work starts. Each option
//! that uses one also takes values that start with a hyphen, so `--lr -1e-3` reaches its parser
//! instead of being taken for a flag.

use std::str::FromStr;

use fer::infer::faces::SMALLEST_FACE;
use fer::train::accepted_in_f32;

/// A whole number of at least `MIN`: counts of epochs, images, steps and sizes.
pub fn at_least<const MIN: usize>(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(value) if value >= MIN => Ok(value),
        _ => Err(format!("must be a whole number of at least {MIN}")),
    }
}

/// The smallest face a detector looks for: at least the cascade's [`SMALLEST_FACE`] pixels.
pub fn min_face(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(pixels) if pixels >= SMALLEST_FACE => Ok(pixels),
        _ => Err(format!(
            "must be a whole number of pixels, at least {SMALLEST_FACE} (the detector finds no smaller face)"
        )),
    }
}

/// A finite number above 0 (a learning rate).
pub fn positive<T: FromStr + Into<f64> + Copy>(text: &str) -> Result<T, String> {
    number(text, |value| value > 0.0, "a number above 0")
}

/// A finite number of at least 0 (weight decay, seconds).
pub fn non_negative<T: FromStr + Into<f64> + Copy>(text: &str) -> Result<T, String> {
    number(text, |value| value >= 0.0, "a number of at least 0")
}

/// At least 0 and below 1: a dropout rate, momentum, label smoothing (at 1 the first two never
/// forget and the last erases the labels).
pub fn fraction<T: FromStr + Into<f64> + Copy>(text: &str) -> Result<T, String> {
    number(
        text,
        |value| (0.0..1.0).contains(&value),
        "a number from 0 up to (not including) 1",
    )
}

/// Parses a `T` that `accept` takes, in f32's range ([`accepted_in_f32`]).
fn number<T: FromStr + Into<f64> + Copy>(
    text: &str,
    accept: impl Fn(f64) -> bool,
    what: &str,
) -> Result<T, String> {
    match text.trim().parse::<T>() {
        Ok(value) if accepted_in_f32(value.into(), &accept) => Ok(value),
        _ => Err(format!("must be {what} (in f32's range)")),
    }
}
