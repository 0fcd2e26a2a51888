//! A checkpoint ready to classify: its model built and loaded, with the images it reads and the
//! classes its outputs name, from the checkpoint's description or, for an older checkpoint,
//! from the model the command line names.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::tta::{self, Tta};
use crate::data::{fer2013, Dataset};
use crate::gpu::GpuContext;
use crate::graph::{GraphError, Model};
use crate::nn::models::{Architecture, ModelChoice};
use crate::train::checkpoint::{self, CheckpointError, Description};
use crate::train::runner::{Evaluation, RunError, Runner};
use crate::train::session::softmax_rows;

/// Why a checkpoint cannot classify: one sentence naming the file.
#[derive(Debug, Error)]
pub enum InferError {
    #[error(
        "checkpoint {0} does not say which model it holds (it was written before fer checkpoints \
         described themselves): name it with --model or --model-file"
    )]
    Undescribed(PathBuf),
    #[error(
        "checkpoint {path} holds model `{holds}`, not the `{asked}` the command names: leave out \
         --model and --model-file, or give the checkpoint of `{asked}`"
    )]
    Disagrees {
        path: PathBuf,
        holds: String,
        asked: String,
    },
    #[error("the baseline has no checkpoint; `fer train --model baseline` reports it")]
    Baseline,
    #[error("checkpoint {path} names {classes} classes, but its model has {outputs} outputs")]
    ClassCount {
        path: PathBuf,
        classes: usize,
        outputs: usize,
    },
    #[error("{0}")]
    Tta(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Run(#[from] RunError),
}

pub struct Classifier {
    pub model: Model,
    pub description: Description,
    /// False for a checkpoint without a description: its model came from the command line and
    /// its class names are assumed (FER2013's for seven outputs) until the data names them.
    pub self_described: bool,
}

/// What `path` holds: its description (which `asked`, when given, must agree with), and whether
/// it described itself; for a checkpoint without one, `asked` at `architecture` with no class
/// names.
pub fn resolve(
    path: &Path,
    asked: Option<&ModelChoice>,
    architecture: &Architecture,
) -> Result<(Description, bool), InferError> {
    Ok(match (checkpoint::describe(path)?, asked) {
        (Some(description), Some(asked)) if !same_model(&description.model, asked) => {
            return Err(InferError::Disagrees {
                path: path.to_path_buf(),
                holds: description.model.name().to_string(),
                asked: asked.name().to_string(),
            })
        }
        (Some(description), _) => (description, true),
        (None, Some(asked)) => (
            Description {
                model: asked.clone(),
                architecture: architecture.clone(),
                input: asked.input(architecture),
                classes: Vec::new(),
            },
            false,
        ),
        (None, None) => return Err(InferError::Undescribed(path.to_path_buf())),
    })
}

impl Classifier {
    /// Opens `path`: the model its description names (which `asked`, when given, must be) or,
    /// for a checkpoint without one, `asked` at `architecture`.
    pub fn open(
        ctx: &GpuContext,
        path: &Path,
        asked: Option<&ModelChoice>,
        architecture: &Architecture,
    ) -> Result<Self, InferError> {
        let (mut description, self_described) = resolve(path, asked, architecture)?;
        let model = description
            .model
            .build(ctx, &description.architecture, 0)?
            .ok_or(InferError::Baseline)?;
        checkpoint::load(ctx, &model, path)?;
        let outputs = model
            .shapes(1)?
            .last()
            .and_then(|shape| shape.last().copied())
            .unwrap_or(0);
        if !self_described {
            description.classes = assumed_classes(outputs);
        } else if description.classes.len() != outputs {
            return Err(InferError::ClassCount {
                path: path.to_path_buf(),
                classes: description.classes.len(),
                outputs,
            });
        }
        Ok(Classifier {
            model,
            description,
            self_described,
        })
    }

    /// Inference over `data` in order, in batches of `batch_size`: logits and, where the labels
    /// mean something, loss and accuracy.
    pub fn evaluate(
        &self,
        ctx: &GpuContext,
        data: &Dataset,
        batch_size: usize,
    ) -> Result<Evaluation, InferError> {
        Ok(Runner::new(ctx, &self.model, 0.0)?.evaluate(data, batch_size)?)
    }

    /// Each image's class probabilities averaged over `tta`'s views of it, for `data` read at
    /// [`Tta::image_spec`] of the model's input.
    pub fn averaged_probabilities(
        &self,
        ctx: &GpuContext,
        data: &Dataset,
        batch_size: usize,
        tta: &Tta,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        let input = &self.description.input;
        let expected = tta.image_spec(input).map_err(InferError::Tta)?;
        if data.spec().shape() != expected.shape() {
            return Err(InferError::Tta(format!(
                "--tta {tta} reads images at {:?}, not {:?}",
                expected.shape(),
                data.spec().shape()
            )));
        }
        let views = tta
            .views(data, input)
            .iter()
            .map(|view| {
                let evaluation = self.evaluate(ctx, view, batch_size)?;
                Ok(softmax_rows(&evaluation.logits, data.class_count()))
            })
            .collect::<Result<Vec<_>, InferError>>()?;
        Ok(tta::average(&views))
    }

    /// Each image's class probabilities, for images of the model's input spec (channel planes,
    /// `[channels, height, width]` bytes each, back to back).
    pub fn probabilities(
        &self,
        ctx: &GpuContext,
        images: Vec<u8>,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        let count = images.len() / self.description.input.shape().iter().product::<usize>();
        if count == 0 {
            return Ok(Vec::new());
        }
        let unlabelled = Dataset::new(
            self.description.input.clone(),
            self.description.classes.clone(),
            images,
            vec![0; count],
        );
        let evaluation = self.evaluate(ctx, &unlabelled, batch_size)?;
        Ok(softmax_rows(
            &evaluation.logits,
            self.description.classes.len(),
        ))
    }
}

/// Whether the model a checkpoint holds is the one a command names: the same built-in model
/// (whose knobs the checkpoint knows), or the same graph.
fn same_model(held: &ModelChoice, asked: &ModelChoice) -> bool {
    match (held, asked) {
        (ModelChoice::BuiltIn(held), ModelChoice::BuiltIn(asked)) => held == asked,
        (ModelChoice::File(held), ModelChoice::File(asked)) => held == asked,
        _ => false,
    }
}

/// Class names for a checkpoint that has none: FER2013's seven for seven outputs (the study's
/// data), else `class_0`, `class_1`, ...
fn assumed_classes(outputs: usize) -> Vec<String> {
    if outputs == fer2013::CLASS_NAMES.len() {
        fer2013::class_names()
    } else {
        (0..outputs).map(|i| format!("class_{i}")).collect()
    }
}
