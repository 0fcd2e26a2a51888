//! augment: the sampling kernel held exactly on representable data (integer images moved by
//! whole and half pixels, where every bilinear weight is 0, 1/2 or 1 and every sum is exact),
//! each fill mode at the borders against hand-written rows, a quarter turn of a non-square
//! image, identities, flips and seeding; then every kernel against its twin on awkward shapes
//! (batch 3, 47×45, one and three channels) with the tolerances derived where they are used.

use fer::gpu::GpuBuffer;
use fer::kernels::augment::{
    color_jitter, erase, erase_words, sample, AugmentError, BatchShape, ColorJitter, Fill,
    JitterDraw, Normalisation, RandomAffine, RandomCrop, RandomErasing, RandomResizedCrop,
    Transform,
};
use fer::reference::augment as twin;

use crate::common::*;

/// Every fill, for images of `channels` channels; the constant differs by channel (−7, −6, …),
/// as black does under a per-channel normalisation.
fn fills(channels: usize) -> [Fill; 4] {
    [
        Fill::Nearest,
        Fill::Constant(constants(channels)),
        Fill::Reflect,
        Fill::Mirror,
    ]
}

/// The constant fill's values: −7 in the first channel, one more in each next.
fn constants(channels: usize) -> Vec<f32> {
    (0..channels).map(|c| c as f32 - 7.0).collect()
}

fn shape(batch: usize, channels: usize, height: usize, width: usize) -> BatchShape {
    BatchShape {
        batch,
        channels,
        height,
        width,
    }
}

/// Even integers in [−64, 62]: averages of two or four of them are exact in f32.
fn integers(seed: u64, len: usize) -> Vec<f32> {
    random(seed, len)
        .iter()
        .map(|v| 2.0 * (v * 32.0).floor())
        .collect()
}

/// The GPU's resampling of `x` through `transforms`.
fn gpu_sample(
    input: BatchShape,
    out: (usize, usize),
    fill: &Fill,
    transforms: &[Transform],
    x: &[f32],
) -> Vec<f32> {
    let y = zeros(input.resized(out.0, out.1).len());
    let words = upload(&Transform::words(transforms));
    run(&[&sample(gpu(), input, out, fill, &words, &upload(x), &y).expect("sample builds")]);
    read(&y)
}

/// Twin and GPU agree bit for bit, and the result is returned.
fn sample_exactly(
    what: &str,
    input: BatchShape,
    out: (usize, usize),
    fill: &Fill,
    transforms: &[Transform],
    x: &[f32],
) -> Vec<f32> {
    let got = gpu_sample(input, out, fill, transforms, x);
    assert_bits_eq(what, &got, &twin::sample(input, out, fill, transforms, x));
    got
}

/// Rows `a b c d` (one per channel and row) moved 3 pixels right and 3 left, 9 (more than a
/// period of every fill) and by whole pixels vertically: each fill's extension as its doc
/// draws it.
#[test]
fn every_fill_extends_the_border_as_documented() {
    let s = shape(1, 1, 1, 4);
    let x = [10.0, 20.0, 30.0, 40.0];
    let [a, b, c, d] = x;
    let v = -7.0;
    // Output x reads input x + dx, for dx = −3, 3 and 9.
    let cases = [
        (Fill::Nearest, [a, a, a, a], [d, d, d, d], [d, d, d, d]),
        (
            Fill::Constant(vec![v]),
            [v, v, v, a],
            [d, v, v, v],
            [v, v, v, v],
        ),
        (Fill::Reflect, [c, b, a, a], [d, d, c, b], [b, c, d, d]),
        (Fill::Mirror, [d, c, b, a], [d, c, b, a], [d, c, b, a]),
    ];
    for (fill, left, right, far) in cases {
        for (dx, want) in [(-3.0, left), (3.0, right), (9.0, far)] {
            let got = sample_exactly(
                &format!("{fill:?} dx={dx}"),
                s,
                (1, 4),
                &fill,
                &[Transform::shift(dx, 0.0, 1, 4)],
                &x,
            );
            assert_bits_eq(&format!("{fill:?} dx={dx}, by hand"), &got, &want);
        }
    }
}

/// Half-pixel moves average neighbours: (x + ½, y) the pair to the right, (x + ½, y + ½) the
/// square of four, both exact on even integers; whole-pixel moves copy. Batch 3, 5 channels,
/// each image its own move, every fill at the border, checked against sums written out here.
#[test]
fn bilinear_sampling_is_exact_on_half_and_whole_pixels() {
    let s = shape(3, 5, 7, 6);
    let x = integers(1, s.len());
    let moves = [(0.5, 0.0), (-2.5, 1.5), (2.0, -3.0)];
    let transforms: Vec<Transform> = moves
        .iter()
        .map(|&(dx, dy)| Transform::shift(dx, dy, s.height, s.width))
        .collect();
    for fill in fills(s.channels) {
        let got = sample_exactly(
            &format!("{fill:?}"),
            s,
            (s.height, s.width),
            &fill,
            &transforms,
            &x,
        );
        for (image, &(dx, dy)) in moves.iter().enumerate() {
            for channel in 0..s.channels {
                let plane = (image * s.channels + channel) * s.height * s.width;
                let pixel = |column: i64, row: i64| match (
                    fill.extend(column, s.width as i64),
                    fill.extend(row, s.height as i64),
                ) {
                    (Some(cx), Some(cy)) => x[plane + cy as usize * s.width + cx as usize],
                    _ => fill.values(s.channels).expect("a value per channel")[channel],
                };
                for row in 0..s.height as i64 {
                    for column in 0..s.width as i64 {
                        let (xs, ys) = (column as f64 + dx, row as f64 + dy);
                        let (c0, r0) = (xs.floor() as i64, ys.floor() as i64);
                        let columns: &[i64] = if xs.fract() == 0.0 {
                            &[c0]
                        } else {
                            &[c0, c0 + 1]
                        };
                        let rows: &[i64] = if ys.fract() == 0.0 {
                            &[r0]
                        } else {
                            &[r0, r0 + 1]
                        };
                        let sum: f32 = rows
                            .iter()
                            .flat_map(|&r| columns.iter().map(move |&c| (c, r)))
                            .map(|(c, r)| pixel(c, r))
                            .sum();
                        let want = sum / (rows.len() * columns.len()) as f32;
                        let at = plane + row as usize * s.width + column as usize;
                        assert_eq!(
                            got[at], want,
                            "{fill:?} image {image} channel {channel} ({column}, {row})"
                        );
                    }
                }
            }
        }
    }
}

/// A quarter turn of a 3×5 image about its centre (2, 1) is exact (cos 90° is exactly 0): output
/// (x, y) reads input (y + 1, 3 − x), so columns 0 and 4 read rows 3 and −1, past the edges.
#[test]
fn a_quarter_turn_of_a_non_square_image_fills_each_border() {
    let s = shape(2, 3, 3, 5);
    let x = integers(2, s.len());
    let turn = RandomAffine {
        degrees: (90.0, 90.0),
        ..RandomAffine::default()
    };
    let transforms: Vec<Transform> = (0..s.batch).map(|i| turn.draw(9, i, 3, 5)).collect();
    // The row each output column reads, by fill (None: the constant).
    let rows: [(Fill, [Option<usize>; 5]); 4] = [
        (Fill::Nearest, [Some(2), Some(2), Some(1), Some(0), Some(0)]),
        (
            Fill::Constant(constants(s.channels)),
            [None, Some(2), Some(1), Some(0), None],
        ),
        (Fill::Reflect, [Some(2), Some(2), Some(1), Some(0), Some(0)]),
        (Fill::Mirror, [Some(1), Some(2), Some(1), Some(0), Some(1)]),
    ];
    for (fill, rows) in rows {
        let got = sample_exactly(&format!("{fill:?}"), s, (3, 5), &fill, &transforms, &x);
        for plane in 0..s.batch * s.channels {
            let constant = constants(s.channels)[plane % s.channels];
            for y in 0..3 {
                for (column, row) in rows.iter().enumerate() {
                    let want = row.map_or(constant, |row| x[plane * 15 + row * 5 + y + 1]);
                    assert_eq!(
                        got[plane * 15 + y * 5 + column],
                        want,
                        "{fill:?} plane {plane} output ({column}, {y})"
                    );
                }
            }
        }
    }
}

/// Identity parameters of every transform give back the batch bit for bit.
#[test]
fn identity_parameters_leave_the_batch_bit_identical() {
    for channels in [1, 3] {
        let s = shape(3, channels, 47, 45);
        // Pixel values in [0, 1], where brightness, contrast and saturation 1 are identities.
        let x: Vec<f32> = random(3, s.len()).iter().map(|v| v * 0.5 + 0.5).collect();
        let affine: Vec<Transform> = (0..3)
            .map(|i| RandomAffine::default().draw(4, i, 47, 45))
            .collect();
        let crop = RandomCrop {
            height: 47,
            width: 45,
            padding: 0,
        };
        let crops: Vec<Transform> = (0..3).map(|i| crop.draw(4, i, 47, 45)).collect();
        for (what, transforms) in [("affine", &affine), ("crop", &crops)] {
            for fill in fills(channels) {
                let got = gpu_sample(s, (47, 45), &fill, transforms, &x);
                assert_bits_eq(&format!("{what} {fill:?} C={channels}"), &got, &x);
            }
        }
        let one = Some((1.0, 1.0));
        let jitter = ColorJitter {
            brightness: one,
            contrast: one,
            saturation: (channels == 3).then_some((1.0, 1.0)),
            hue: None,
        };
        let got = gpu_jitter(s, &jitter, &Normalisation::none(channels), 5, &x)
            .expect("jitter accepts its batch");
        assert_bits_eq(&format!("jitter C={channels}"), &got.0, &x);
        let no_erasing = RandomErasing {
            p: 0.0,
            scale: (0.02, 0.33),
            ratio: (0.3, 3.3),
            value: 0.0,
        };
        assert_bits_eq(
            &format!("erase p=0 C={channels}"),
            &gpu_erase(s, &no_erasing, 6, &x).0,
            &x,
        );
    }
}

fn flips(batch: usize, height: usize, width: usize) -> Vec<Transform> {
    let flip = RandomAffine {
        flip: 1.0,
        ..RandomAffine::default()
    };
    (0..batch).map(|i| flip.draw(1, i, height, width)).collect()
}

/// A flip reverses each row exactly; two flips are the identity.
#[test]
fn a_flip_reverses_rows_and_two_flips_are_the_identity() {
    let s = shape(3, 3, 47, 45);
    let x = random(7, s.len());
    let transforms = flips(3, 47, 45);
    let once = sample_exactly("flip", s, (47, 45), &Fill::Nearest, &transforms, &x);
    let reversed: Vec<f32> = x
        .chunks(45)
        .flat_map(|row| row.iter().rev().copied())
        .collect();
    assert_bits_eq("flip reverses rows", &once, &reversed);
    let twice = gpu_sample(s, (47, 45), &Fill::Nearest, &transforms, &once);
    assert_bits_eq("flip twice", &twice, &x);
}

fn heavy_affine() -> RandomAffine {
    RandomAffine {
        degrees: (-20.0, 20.0),
        translate: (0.2, 0.2),
        scale: (0.8, 1.2),
        shear_x: (-10.0, 10.0),
        shear_y: (-5.0, 5.0),
        flip: 0.5,
    }
}

fn draw_affine(affine: &RandomAffine, seed: u64, s: BatchShape) -> Vec<Transform> {
    (0..s.batch)
        .map(|i| affine.draw(seed, i, s.height, s.width))
        .collect()
}

/// The same seed gives the same batch; another seed (either word) changes most pixels.
#[test]
fn the_seed_fixes_the_augmentation() {
    let s = shape(8, 1, 20, 18);
    let x = random(8, s.len());
    let augmented = |seed| {
        gpu_sample(
            s,
            (20, 18),
            &Fill::Reflect,
            &draw_affine(&heavy_affine(), seed, s),
            &x,
        )
    };
    let base = augmented(0x1234_5678_0000_0001);
    assert_bits_eq("same seed", &augmented(0x1234_5678_0000_0001), &base);
    for other in [0x1234_5678_0000_0002, 0x1234_5679_0000_0001] {
        let differ = augmented(other)
            .iter()
            .zip(&base)
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            differ > s.len() / 2,
            "seed {other:#x}: only {differ} of {} values differ",
            s.len()
        );
    }
}

/// The GPU's sampling against the twin at random affine maps (rotation, whole-pixel shift,
/// zoom, shear, flip). The twin forms each coordinate m0·x + m1·y + m2 in f64; the GPU rounds
/// up to three times (fused or not), an error within γ3·(|m0·x| + |m1·y| + |m2|) pixels, and
/// bilinear interpolation moves by at most the largest step between neighbours, ≤ 2·max|v|,
/// per pixel of error in either coordinate. Its three lerps in f32 add ≤ 12u·max|v| more.
#[test]
fn random_affine_matches_twin() {
    for channels in [1, 3] {
        let s = shape(3, channels, 47, 45);
        let x = random(10 + channels as u64, s.len());
        let transforms = draw_affine(&heavy_affine(), 11, s);
        for fill in fills(channels) {
            let got = gpu_sample(s, (47, 45), &fill, &transforms, &x);
            let want = twin::sample(s, (47, 45), &fill, &transforms, &x);
            // Values within ±1, the constant fill −7 to −5.
            let tolerance = sampling_tolerance(s, (47, 45), &transforms, 7.0);
            assert_within(
                &format!("affine {fill:?} C={channels}"),
                &got,
                &want,
                &tolerance,
            );
        }
    }
}

/// The bound of [`random_affine_matches_twin`] per output value, for values within ±`max_value`.
fn sampling_tolerance(
    s: BatchShape,
    (out_height, out_width): (usize, usize),
    transforms: &[Transform],
    max_value: f64,
) -> Vec<f64> {
    let mut tolerance = Vec::new();
    for t in transforms {
        let m = t.matrix.map(|v| v.abs() as f64);
        for _ in 0..s.channels {
            for y in 0..out_height {
                for x in 0..out_width {
                    let (x, y) = (x as f64, y as f64);
                    let coordinate_error =
                        gamma(3) * (m[0] * x + m[1] * y + m[2] + m[3] * x + m[4] * y + m[5]);
                    tolerance.push(2.0 * max_value * coordinate_error + 12.0 * U * max_value);
                }
            }
        }
    }
    tolerance
}

/// Random crops with padding move by whole pixels: exact, every padding mode. Random resized
/// crops zoom: within the affine bound.
#[test]
fn crops_match_twin() {
    for channels in [1, 3] {
        let s = shape(3, channels, 47, 45);
        let x = random(20 + channels as u64, s.len());
        let crop = RandomCrop {
            height: 44,
            width: 40,
            padding: 4,
        };
        crop.validate(47, 45).expect("the crop fits");
        let crops: Vec<Transform> = (0..3).map(|i| crop.draw(12, i, 47, 45)).collect();
        for fill in fills(channels) {
            sample_exactly(
                &format!("crop {fill:?} C={channels}"),
                s,
                (44, 40),
                &fill,
                &crops,
                &x,
            );
        }
        let resized = RandomResizedCrop {
            height: 30,
            width: 50,
            scale: (0.08, 1.0),
            ratio: (0.75, 4.0 / 3.0),
        };
        resized.validate().expect("valid ranges");
        let crops: Vec<Transform> = (0..3).map(|i| resized.draw(13, i, 47, 45)).collect();
        let got = gpu_sample(s, (30, 50), &Fill::Nearest, &crops, &x);
        let want = twin::sample(s, (30, 50), &Fill::Nearest, &crops, &x);
        let tolerance = sampling_tolerance(s, (30, 50), &crops, 1.0);
        assert_within(
            &format!("resized crop C={channels}"),
            &got,
            &want,
            &tolerance,
        );
    }
}

/// The GPU's jitter of `x` and the draws it used.
fn gpu_jitter(
    s: BatchShape,
    jitter: &ColorJitter,
    normalisation: &Normalisation,
    seed: u64,
    x: &[f32],
) -> Result<(Vec<f32>, Vec<JitterDraw>), AugmentError> {
    let draws: Vec<JitterDraw> = (0..s.batch).map(|i| jitter.draw(seed, i)).collect();
    let y = zeros(s.len());
    let words = upload(&JitterDraw::words(&draws));
    let dispatch = color_jitter(gpu(), s, jitter, normalisation, &words, &upload(x), &y)?;
    run(&[&dispatch]);
    Ok((read(&y), draws))
}

/// Colour jitter against its f64 twin, on a normalised batch ((p − mean)/std). In pixel units
/// each step rounds at most ~20 times (hue's conversion to HSV and back, with divisions WGSL
/// allows 2.5 ulp), ≤ 32u, and the later steps scale an earlier error by at most their factor
/// (≤ 2 here): ≤ 32u·(1 + 2 + 4 + 8) < 512u after four steps. Contrast's mean grey is summed
/// ~33 values per invocation then over a tree of 64, within γ40 of the mean. Normalising again
/// divides by std.
#[test]
fn color_jitter_matches_twin() {
    let jitter = ColorJitter {
        brightness: Some((0.6, 1.4)),
        contrast: Some((0.6, 1.4)),
        saturation: Some((0.0, 2.0)),
        hue: Some((-0.5, 0.5)),
    };
    for channels in [1, 3] {
        let jitter = ColorJitter {
            saturation: jitter.saturation.filter(|_| channels == 3),
            hue: jitter.hue.filter(|_| channels == 3),
            ..jitter
        };
        let s = shape(3, channels, 47, 45);
        let normalisation = Normalisation {
            mean: vec![0.5, 0.45, 0.4][..channels].to_vec(),
            std: vec![0.25, 0.2, 0.3][..channels].to_vec(),
        };
        // Pixel values in [0, 1), normalised.
        let x: Vec<f32> = random(30, s.len())
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = (i / (47 * 45)) % channels;
                (v * 0.5 + 0.5 - normalisation.mean[c]) / normalisation.std[c]
            })
            .collect();
        let (got, draws) =
            gpu_jitter(s, &jitter, &normalisation, 31, &x).expect("jitter accepts its batch");
        let want = twin::color_jitter(s, &normalisation, &draws, &x);
        let tolerance: Vec<f64> = (0..s.len())
            .map(|i| {
                let std = normalisation.std[(i / (47 * 45)) % channels] as f64;
                (512.0 * U + gamma(40)) / std
            })
            .collect();
        assert_within(&format!("jitter C={channels}"), &got, &want, &tolerance);
    }
}

#[test]
fn a_grey_batch_refuses_saturation_and_hue() {
    let s = shape(2, 1, 5, 5);
    for jitter in [
        ColorJitter {
            saturation: Some((0.5, 1.5)),
            ..ColorJitter::default()
        },
        ColorJitter {
            hue: Some((-0.1, 0.1)),
            ..ColorJitter::default()
        },
    ] {
        match gpu_jitter(s, &jitter, &Normalisation::none(1), 1, &vec![0.5; s.len()]) {
            Err(AugmentError::Invalid(message)) => {
                assert!(message.contains("grey"), "unclear refusal: {message}")
            }
            other => panic!("{jitter:?} on a grey batch: {:?}", other.map(|_| ())),
        }
    }
}

/// The GPU's erasing of `x` in place, and the boxes.
fn gpu_erase(
    s: BatchShape,
    erasing: &RandomErasing,
    seed: u64,
    x: &[f32],
) -> (Vec<f32>, Vec<[u32; 4]>) {
    let boxes: Vec<[u32; 4]> = (0..s.batch)
        .map(|i| erasing.draw(seed, i, s.height, s.width))
        .collect();
    let batch: GpuBuffer = upload(x);
    let words = upload_u32(&erase_words(&boxes));
    run(&[&erase(gpu(), s, erasing.value, &words, &batch).expect("erase builds")]);
    (read(&batch), boxes)
}

/// Erasing is a selection: bit for bit, and each box holds exactly its area of `value`.
#[test]
fn random_erasing_matches_twin() {
    let erasing = RandomErasing {
        p: 1.0,
        scale: (0.02, 0.33),
        ratio: (0.3, 3.3),
        value: 0.0,
    };
    erasing.validate().expect("valid ranges");
    for channels in [1, 3] {
        let s = shape(3, channels, 47, 45);
        // No zeros of its own, so the zeros counted are the erased ones.
        let x: Vec<f32> = random(40, s.len()).iter().map(|v| v + 2.0).collect();
        let (got, boxes) = gpu_erase(s, &erasing, 41, &x);
        assert_bits_eq(
            &format!("erase C={channels}"),
            &got,
            &twin::erase(s, &boxes, 0.0, &x),
        );
        for (image, [_, _, h, w]) in boxes.iter().enumerate() {
            assert!(h * w > 0, "image {image}: p = 1 but nothing erased");
            let zeros = got[image * channels * 47 * 45..][..channels * 47 * 45]
                .iter()
                .filter(|&&v| v == 0.0)
                .count();
            assert_eq!(zeros, (h * w) as usize * channels, "image {image}");
        }
    }
}

/// The crops of a larger upload (`fer train --load-size`) run first in the augmentation:
/// batch 3, three channels, 11×13 images cut to the model's 7×8 at random. Whole-pixel moves, so
/// the GPU equals the twins' pipeline bit for bit — alone (one out-of-place stage), before a
/// flip and erasing (two), and before a padded crop and a flip (three), so the crop's upload
/// buffer meets either parity. The twins' crop itself is an 11×13 image's window at an offset
/// within the margins, the offsets vary over images and steps, and a flip after it mirrors the
/// 7×8 crop.
#[test]
fn crops_of_a_larger_upload_match_the_twin() {
    use fer::data::ImageSpec;
    use fer::train::augmentation::{Augmentation, Augmenter};

    let (loaded, input) = (
        ImageSpec::imagenet_rgb(11, 13),
        ImageSpec::imagenet_rgb(7, 8),
    );
    let images = 3;
    let x = random(30, images * 3 * 11 * 13);
    let y = zeros(images * 3 * 7 * 8);
    for text in ["", "flip,erase=1", "crop=2,flip,fill=reflect"] {
        let augmentation: Augmentation = text.parse().unwrap();
        let mut augmenter = Augmenter::new(&augmentation, &loaded, &input)
            .unwrap()
            .expect("a larger upload is always cropped");
        for step in [7, 8] {
            augmenter
                .write_batch(gpu(), images, &y, &x, (3, step))
                .unwrap();
            run(&augmenter.dispatches(images).iter().collect::<Vec<_>>());
            assert_eq!(
                read(&y),
                augmenter.augment_on_cpu(&x, 3, step),
                "`{text}` step {step}"
            );
        }
    }

    let crops = Augmenter::new(&Augmentation::default(), &loaded, &input)
        .unwrap()
        .unwrap();
    let mut offsets = Vec::new();
    for step in 0..4 {
        let cropped = crops.augment_on_cpu(&x, 3, step);
        for (image, crop) in cropped.chunks_exact(3 * 7 * 8).enumerate() {
            let source = &x[image * 3 * 11 * 13..][..3 * 11 * 13];
            let window = |(top, left): (usize, usize)| -> Vec<f32> {
                (0..3 * 7 * 8)
                    .map(|i| {
                        let (c, row, column) = (i / 56, i / 8 % 7, i % 8);
                        source[(c * 11 + top + row) * 13 + left + column]
                    })
                    .collect()
            };
            let found = (0..=4)
                .flat_map(|top| (0..=5).map(move |left| (top, left)))
                .find(|&offset| window(offset) == crop)
                .unwrap_or_else(|| panic!("step {step} image {image} is no window"));
            offsets.push(found);
        }
    }
    offsets.sort();
    offsets.dedup();
    assert!(offsets.len() >= 6, "12 crops at only {offsets:?}");

    // The stages after the crop work at the model's size: a certain flip mirrors each crop
    // (the crop draws from the same seed as alone, being first).
    let flips = Augmenter::new(&"flip=1".parse().unwrap(), &loaded, &input)
        .unwrap()
        .unwrap();
    let mirrored: Vec<f32> = crops
        .augment_on_cpu(&x, 3, 5)
        .chunks_exact(8)
        .flat_map(|row| row.iter().rev().copied())
        .collect();
    assert_eq!(flips.augment_on_cpu(&x, 3, 5), mirrored);
}

/// `fill=constant` paints black, which ImageNet's normalisation puts at a different value in
/// each channel (−2.12, −2.04, −1.80): padded crops of RGB faces equal the twin's pipeline bit
/// for bit (whole-pixel moves), every value is the image's or its channel's black, and the
/// padding shows in every channel.
#[test]
fn a_constant_fill_paints_each_channels_black() {
    use fer::data::ImageSpec;
    use fer::train::augmentation::{Augmentation, Augmenter};

    let spec = ImageSpec::imagenet_rgb(7, 8);
    let black: Vec<f32> = spec
        .mean
        .iter()
        .zip(&spec.std)
        .map(|(mean, std)| -mean / std)
        .collect();
    let images = 4;
    let x = random(31, images * 3 * 7 * 8);
    let y = zeros(x.len());
    let augmentation: Augmentation = "crop=3,fill=constant".parse().unwrap();
    augmentation
        .check(&spec)
        .expect("a constant fill suits RGB");
    let mut augmenter = Augmenter::new(&augmentation, &spec, &spec)
        .unwrap()
        .expect("a crop augments");
    augmenter
        .write_batch(gpu(), images, &y, &x, (5, 2))
        .unwrap();
    run(&augmenter.dispatches(images).iter().collect::<Vec<_>>());
    let got = read(&y);
    assert_eq!(got, augmenter.augment_on_cpu(&x, 5, 2), "GPU against twin");
    let mut filled = [0; 3];
    for (plane, values) in got.chunks_exact(7 * 8).enumerate() {
        let channel = plane % 3;
        let source = &x[plane * 56..][..56];
        for &v in values {
            if v == black[channel] {
                filled[channel] += 1;
            } else {
                assert!(source.contains(&v), "plane {plane}: {v} is neither");
            }
        }
    }
    assert!(
        filled.iter().all(|&n| n > 0),
        "padding per channel: {filled:?}"
    );
}
