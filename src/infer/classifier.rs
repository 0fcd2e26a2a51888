//! A checkpoint ready to classify: its model built and loaded, with the images it reads and the
//! classes its outputs name, from the checkpoint's description or, for an older checkpoint,
//! from the model the command line names.

use std::collections::hash_map::{Entry, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use image::DynamicImage;
use thiserror::Error;

use super::tta::{self, centre_of, read_at, Tta};
use crate::data::batch::to_normalized_f32;
use crate::data::{fer2013, to_spec, Dataset, ImageSpec};
use crate::gpu::{GpuBuffer, GpuContext, GpuError};
use crate::graph::{GraphError, Model, Plan};
use crate::nn::models::{Architecture, ModelChoice, ModelKind};
use crate::train::checkpoint::{self, CheckpointError, Description};
use crate::train::runner::{Evaluation, InFlight, RunError, Runner};
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
    #[error(
        "checkpoint {path} holds a model named `{name}` whose nodes differ from the model file's: \
         leave out --model-file (the checkpoint describes its model), or give the file it was \
         trained from"
    )]
    OtherGraph { path: PathBuf, name: String },
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
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

impl InferError {
    /// Whether the model does not fit the adapter at the batch size asked (a buffer over its
    /// limits, or memory exhausted), rather than something else going wrong.
    pub fn does_not_fit(&self) -> bool {
        let gpu = |error: &GpuError| {
            matches!(
                error,
                GpuError::OutOfMemory { .. } | GpuError::Allocation { .. }
            )
        };
        let graph = |error: &GraphError| match error {
            GraphError::TensorTooLarge { .. }
            | GraphError::TooLarge { .. }
            | GraphError::TensorUnbindable { .. } => true,
            GraphError::Gpu(error) => gpu(error),
            _ => false,
        };
        match self {
            InferError::Graph(error) | InferError::Run(RunError::Graph(error)) => graph(error),
            InferError::Gpu(error) | InferError::Run(RunError::Gpu(error)) => gpu(error),
            _ => false,
        }
    }
}

pub struct Classifier {
    pub model: Model,
    pub description: Description,
    /// False for a checkpoint without a description: its model came from the command line and
    /// its class names are assumed (FER2013's for seven outputs) until the data names them.
    pub self_described: bool,
    /// What a face is read at before its centre is cut to the input: the input, or larger for
    /// a model trained on random crops of larger images (`fer train --load-size`).
    pub read: ImageSpec,
    /// Inference plans by batch size, kept between calls so that classifying a frame at a time
    /// builds no buffers, bind groups or kernels: those of the last call's sizes only.
    plans: Mutex<HashMap<usize, Plan>>,
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
            let (holds, asked) = (description.model.name(), asked.name());
            let path = path.to_path_buf();
            return Err(match holds == asked {
                true => InferError::OtherGraph {
                    path,
                    name: holds.to_string(),
                },
                false => InferError::Disagrees {
                    path,
                    holds: holds.to_string(),
                    asked: asked.to_string(),
                },
            });
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
        let outputs = output_count(&model)?;
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
            read: read_at(&description.input, checkpoint::load_size(path)?),
            model,
            description,
            self_described,
            plans: Mutex::default(),
        })
    }

    /// A face (a crop of a photo or frame) as the model reads it: brought to [`Self::read`]
    /// as training brought its images, then its centre, as validation took it.
    pub fn face_input(&self, face: DynamicImage) -> Vec<u8> {
        let read = to_spec(face, &self.read).0;
        match self.read == self.description.input {
            true => read,
            false => centre_of(&read, &self.read, &self.description.input),
        }
    }

    /// Built-in model `kind` at `architecture` with fresh weights (seed 0) and assumed class
    /// names: for measuring speed, which does not depend on the weights.
    pub fn untrained(
        ctx: &GpuContext,
        kind: ModelKind,
        architecture: &Architecture,
    ) -> Result<Self, InferError> {
        let choice = ModelChoice::BuiltIn(kind);
        let model = choice
            .build(ctx, architecture, 0)?
            .ok_or(InferError::Baseline)?;
        let input = choice.input(architecture);
        Ok(Classifier {
            read: input.clone(),
            description: Description {
                input,
                model: choice,
                architecture: architecture.clone(),
                classes: assumed_classes(output_count(&model)?),
            },
            model,
            self_described: false,
            plans: Mutex::default(),
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
    /// `[channels, height, width]` bytes each, back to back), in batches of `batch_size`.
    ///
    /// The forward pass `fer eval` runs (the same normalisation and kernels, so the same
    /// numbers) without its loss; each batch's logits are copied into one buffer, read back once.
    pub fn probabilities(
        &self,
        ctx: &GpuContext,
        images: Vec<u8>,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        let input = &self.description.input;
        let count = images.len() / input.shape().iter().product::<usize>();
        if count == 0 {
            return Ok(Vec::new());
        }
        let batch_size = batch_size.clamp(1, count);
        let classes = self.description.classes.len();
        let unlabelled = Dataset::new(
            input.clone(),
            self.description.classes.clone(),
            images,
            vec![0; count],
        );
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        plans.retain(|&size, _| size == batch_size || size == count % batch_size);
        let logits = GpuBuffer::zeros(ctx, "inference logits", count * classes);
        let row_bytes = (classes * 4) as u64;
        let order: Vec<usize> = (0..count).collect();
        let mut in_flight = InFlight::default();
        for (i, indices) in order.chunks(batch_size).enumerate() {
            let size = indices.len();
            // The weights never change after `open`: a plan derives what it reads from them
            // (Winograd's transformed weights) on its first batch only.
            let (plan, new) = match plans.entry(size) {
                Entry::Occupied(built) => (built.into_mut(), false),
                Entry::Vacant(slot) => {
                    let what =
                        format!("building model `{}` for batches of {size}", self.model.name);
                    (
                        slot.insert(ctx.guard(&what, || self.model.plan(ctx, size))?),
                        true,
                    )
                }
            };
            plan.input()
                .write(ctx, &to_normalized_f32(&unlabelled, indices));
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                match new {
                    true => plan.record_forward(&mut pass, false),
                    false => plan.record_inference_again(&mut pass),
                }
            }
            encoder.copy_buffer_to_buffer(
                plan.logits().raw(),
                plan.logits().offset_bytes(),
                logits.raw(),
                logits.offset_bytes() + (i * batch_size) as u64 * row_bytes,
                Some(size as u64 * row_bytes),
            );
            in_flight.submit(ctx, encoder)?;
        }
        Ok(softmax_rows(&logits.read(ctx)?, classes))
    }
}

/// The number of outputs (classes) of `model`.
fn output_count(model: &Model) -> Result<usize, GraphError> {
    Ok(model
        .shapes(1)?
        .last()
        .and_then(|shape| shape.last().copied())
        .unwrap_or(0))
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
