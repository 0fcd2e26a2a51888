//! Value parsers for the numeric options. Each refuses what cannot make sense (a batch of 0, a
//! negative or NaN rate) in one sentence, which clap prefixes with the option's name, so a bad
//! option stops the command before any data is loaded or any GPU work starts. Each option
//! that uses one also takes values that start with a hyphen, so `--lr -1e-3` reaches its parser
//! instead of being taken for a flag.

use std::str::FromStr;

/// A whole number of at least `MIN`: counts of epochs, images, steps and sizes.
pub fn at_least<const MIN: usize>(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(value) if value >= MIN => Ok(value),
        _ => Err(format!("must be a whole number of at least {MIN}")),
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

/// Parses a `T` that `accept` takes as it is and as the f32 the kernels compute with: NaN,
/// infinities and numbers beyond f32's range (`--lr 1e300` is an infinite rate on the GPU)
/// never pass.
fn number<T: FromStr + Into<f64> + Copy>(
    text: &str,
    accept: impl Fn(f64) -> bool,
    what: &str,
) -> Result<T, String> {
    let on_the_gpu = |value: f64| value as f32 as f64;
    match text.trim().parse::<T>() {
        Ok(value)
            if on_the_gpu(value.into()).is_finite()
                && accept(value.into())
                && accept(on_the_gpu(value.into())) =>
        {
            Ok(value)
        }
        _ => Err(format!("must be {what} (in f32's range)")),
    }
}
