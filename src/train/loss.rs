//! The training loss a run chooses: cross-entropy or the focal loss, label smoothing, and class
//! weights, given or balanced on the training split.
//!
//! Class weights weigh the training loss only: the validation loss stays unweighted, as Keras
//! reports it with `class_weight` (PyTorch users who reuse one weighted criterion get a weighted
//! one), so runs with and without weights compare on one scale.

use std::str::FromStr;

use serde::Serialize;

use crate::data::Dataset;
use crate::reference::softmax_ce::CrossEntropy;

/// `--loss`: `ce`, or `focal:gamma=G` (`focal` alone is γ = 2, the paper's choice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    #[default]
    CrossEntropy,
    Focal {
        gamma: f32,
    },
}

impl FromStr for LossKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let refused = || format!("`{text}` is not a loss: use `ce` or `focal:gamma=G` with G > 0");
        match text.trim() {
            "ce" => Ok(LossKind::CrossEntropy),
            "focal" => Ok(LossKind::Focal { gamma: 2.0 }),
            other => {
                let gamma = other
                    .strip_prefix("focal:gamma=")
                    .and_then(|g| g.trim().parse::<f32>().ok())
                    .filter(|g| g.is_finite() && *g > 0.0)
                    .ok_or_else(refused)?;
                Ok(LossKind::Focal { gamma })
            }
        }
    }
}

/// `--class-weights`: `balanced`, or one weight per class in the dataset's class order.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeights {
    /// sklearn's and Keras's "balanced": `n_images / (n_classes · n_images_of_class)`.
    Balanced,
    Given(Vec<f32>),
}

impl FromStr for ClassWeights {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim() == "balanced" {
            return Ok(ClassWeights::Balanced);
        }
        text.split(',')
            .map(|w| match w.trim().parse::<f32>() {
                Ok(weight) if weight.is_finite() && weight > 0.0 => Ok(weight),
                _ => Err(format!(
                    "`{}` is not a class weight: give `balanced` or numbers above 0, one per \
                     class, separated by commas",
                    w.trim()
                )),
            })
            .collect::<Result<_, _>>()
            .map(ClassWeights::Given)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LossError {
    #[error(
        "--class-weights gives {given} weights, but the dataset has {} classes: one each, in \
         the order {}",
        .classes.len(),
        .classes.join(", ")
    )]
    WeightCount { given: usize, classes: Vec<String> },
    #[error("--class-weights balanced cannot weigh class `{0}`: it has no training images")]
    EmptyClass(String),
    #[error("--label-smoothing is not defined for the focal loss: drop it, or use --loss ce")]
    FocalSmoothing,
}

/// A run's loss, its class weights resolved against the training split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loss {
    pub label_smoothing: f32,
    /// γ of the focal loss; 0 is cross-entropy.
    pub focal_gamma: f32,
    /// One per class, for the training loss only.
    pub class_weights: Option<Vec<f32>>,
}

impl Loss {
    /// Unweighted cross-entropy with label smoothing ε.
    pub fn cross_entropy(label_smoothing: f32) -> Self {
        Loss {
            label_smoothing,
            ..Loss::default()
        }
    }

    pub fn new(
        kind: LossKind,
        label_smoothing: f32,
        weights: Option<&ClassWeights>,
        train: &Dataset,
    ) -> Result<Self, LossError> {
        let focal_gamma = match kind {
            LossKind::CrossEntropy => 0.0,
            LossKind::Focal { .. } if label_smoothing != 0.0 => {
                return Err(LossError::FocalSmoothing)
            }
            LossKind::Focal { gamma } => gamma,
        };
        let class_weights = match weights {
            None => None,
            Some(ClassWeights::Balanced) => Some(balanced(train)?),
            Some(ClassWeights::Given(weights)) if weights.len() != train.class_count() => {
                return Err(LossError::WeightCount {
                    given: weights.len(),
                    classes: train.class_names().to_vec(),
                })
            }
            Some(ClassWeights::Given(weights)) => Some(weights.clone()),
        };
        Ok(Loss {
            label_smoothing,
            focal_gamma,
            class_weights,
        })
    }

    /// The kernels' description of this loss over `rows` × `classes` logits.
    pub fn over(&self, rows: usize, classes: usize) -> CrossEntropy {
        CrossEntropy {
            label_smoothing: self.label_smoothing,
            focal_gamma: self.focal_gamma,
            ..CrossEntropy::new(rows, classes)
        }
    }
}

/// `n_images / (n_classes · n_images_of_class)` per class (sklearn's
/// `compute_class_weight("balanced")`), refusing a class without images.
fn balanced(train: &Dataset) -> Result<Vec<f32>, LossError> {
    let counts = train.class_counts();
    let images: usize = counts.iter().sum();
    counts
        .iter()
        .zip(train.class_names())
        .map(|(&count, name)| match count {
            0 => Err(LossError::EmptyClass(name.clone())),
            _ => Ok((images as f64 / (counts.len() * count) as f64) as f32),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageSpec;

    /// 1×1 images with these labels, of three classes.
    fn labelled(labels: &[u8]) -> Dataset {
        let spec = ImageSpec {
            height: 1,
            width: 1,
            ..ImageSpec::study_grey()
        };
        let names = ["angry", "disgust", "happy"].map(String::from).to_vec();
        Dataset::new(spec, names, vec![0; labels.len()], labels.to_vec())
    }

    #[test]
    fn balanced_weights_are_sklearns_and_refuse_an_empty_class() {
        let train = labelled(&[0, 0, 0, 2, 1, 0, 2, 2]);
        let loss = Loss::new(
            LossKind::CrossEntropy,
            0.1,
            Some(&ClassWeights::Balanced),
            &train,
        )
        .expect("three populated classes");
        // sklearn: 8 / (3 · [4, 1, 3]).
        let want = [8.0 / 12.0, 8.0 / 3.0, 8.0 / 9.0].map(|w: f64| w as f32);
        assert_eq!(loss.class_weights.as_deref(), Some(&want[..]));
        let no_disgust = labelled(&[0, 2, 2]);
        let refused = Loss::new(
            LossKind::CrossEntropy,
            0.0,
            Some(&ClassWeights::Balanced),
            &no_disgust,
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "--class-weights balanced cannot weigh class `disgust`: it has no training images"
        );
    }

    #[test]
    fn given_weights_need_one_per_class_and_focal_no_smoothing() {
        let train = labelled(&[0, 1, 2]);
        let two = ClassWeights::Given(vec![1.0, 2.0]);
        let refused = Loss::new(LossKind::CrossEntropy, 0.0, Some(&two), &train);
        assert_eq!(
            refused.unwrap_err().to_string(),
            "--class-weights gives 2 weights, but the dataset has 3 classes: one each, in the \
             order angry, disgust, happy"
        );
        let focal = LossKind::Focal { gamma: 2.0 };
        assert!(matches!(
            Loss::new(focal, 0.1, None, &train),
            Err(LossError::FocalSmoothing)
        ));
        let three = ClassWeights::Given(vec![1.0, 2.0, 0.5]);
        let loss = Loss::new(focal, 0.0, Some(&three), &train).expect("a focal loss with α");
        assert_eq!(loss.over(5, 3).focal_gamma, 2.0);
        assert_eq!(loss.class_weights, Some(vec![1.0, 2.0, 0.5]));
    }

    #[test]
    fn loss_flags_parse_or_say_why_not() {
        assert_eq!("ce".parse(), Ok(LossKind::CrossEntropy));
        assert_eq!("focal".parse(), Ok(LossKind::Focal { gamma: 2.0 }));
        assert_eq!(
            "focal:gamma=0.5".parse(),
            Ok(LossKind::Focal { gamma: 0.5 })
        );
        for bad in [
            "focal:gamma=0",
            "focal:gamma=-1",
            "focal:gamma=nan",
            "hinge",
        ] {
            assert!(bad.parse::<LossKind>().is_err(), "{bad}");
        }
        assert_eq!("balanced".parse(), Ok(ClassWeights::Balanced));
        assert_eq!(
            "1, 2.5,3".parse(),
            Ok(ClassWeights::Given(vec![1.0, 2.5, 3.0]))
        );
        for bad in ["1,0,2", "1,,2", "1,inf", "-1", "heavy"] {
            assert!(bad.parse::<ClassWeights>().is_err(), "{bad}");
        }
    }
}
