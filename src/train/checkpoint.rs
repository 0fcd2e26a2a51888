//! Checkpoints as safetensors with the names and shapes of the equivalent PyTorch module's
//! `state_dict()`, so weights move both ways between fer and PyTorch (`load_state_dict` with
//! `strict=True`): every parameter and running statistic as F32, and each batch norm's
//! `num_batches_tracked` as the I64 scalar PyTorch keeps. fer's batch norms use a fixed
//! momentum, so that count is written for PyTorch and read back only to be checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use thiserror::Error;

use crate::gpu::{GpuContext, GpuError};
use crate::graph::Model;

/// Why a checkpoint could not be saved or loaded: one sentence naming the file, the reason
/// included (never also a `source()`, which would print it twice).
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint {path}: {reason}")]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("cannot write checkpoint {path}: {reason}")]
    Write {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{path} is not a safetensors file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("checkpoint {path} lacks tensor `{name}`, which model `{model}` needs")]
    Missing {
        path: PathBuf,
        name: String,
        model: String,
    },
    #[error("checkpoint {path} has tensor `{name}`, which model `{model}` does not have")]
    Extra {
        path: PathBuf,
        name: String,
        model: String,
    },
    #[error("tensor `{name}` in {path} has shape {got:?}; model `{model}` needs {want:?}")]
    Shape {
        path: PathBuf,
        name: String,
        model: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("tensor `{name}` in {path} is {dtype:?}; fer reads F32 tensors")]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: Dtype,
    },
    #[error("`{name}` in {path} is {dtype:?} of shape {shape:?}; PyTorch writes an I64 scalar")]
    Count {
        path: PathBuf,
        name: String,
        dtype: Dtype,
        shape: Vec<usize>,
    },
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// The names of `model`'s batch norm layers, found by their running means as a `state_dict()`
/// names them (`features.1.running_mean`).
pub fn batch_norm_layers(model: &Model) -> impl Iterator<Item = &str> {
    model
        .params
        .iter()
        .filter_map(|param| param.name.strip_suffix(".running_mean"))
}

/// The `num_batches_tracked` entry of each batch norm.
fn batches_tracked_names(model: &Model) -> Vec<String> {
    batch_norm_layers(model)
        .map(|layer| format!("{layer}.num_batches_tracked"))
        .collect()
}

/// Writes every tensor of `model` (parameters and running statistics), and `steps` as each
/// batch norm's `num_batches_tracked`, to `path`, atomically.
pub fn save(
    ctx: &GpuContext,
    model: &Model,
    steps: u64,
    path: &Path,
) -> Result<(), CheckpointError> {
    let mut tensors = Vec::new();
    for param in model.params.iter() {
        let values: Vec<f32> = param.value.read(ctx)?;
        let bytes = bytemuck::cast_slice(&values).to_vec();
        tensors.push((
            param.name.clone(),
            Dtype::F32,
            param.spec.shape.clone(),
            bytes,
        ));
    }
    let count = (steps as i64).to_le_bytes().to_vec();
    for name in batches_tracked_names(model) {
        tensors.push((name, Dtype::I64, Vec::new(), count.clone()));
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format_error(path, error))?;
    let metadata = HashMap::from([("fer_model".to_string(), model.name.clone())]);
    let bytes = safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|error| format_error(path, error))?;
    crate::fsutil::write_atomically(path, &bytes).map_err(|reason| CheckpointError::Write {
        path: path.to_path_buf(),
        reason,
    })
}

/// Loads `path` into `model`, refusing any missing, extra, mistyped or wrong-shaped tensor
/// before anything is overwritten.
pub fn load(ctx: &GpuContext, model: &Model, path: &Path) -> Result<(), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|reason| CheckpointError::Read {
        path: path.to_path_buf(),
        reason,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|error| format_error(path, error))?;
    let here = |name: &str| (path.to_path_buf(), name.to_string(), model.name.clone());
    let mut values = Vec::new();
    for param in model.params.iter() {
        let view = file.tensor(&param.name).map_err(|_| {
            let (path, name, model) = here(&param.name);
            CheckpointError::Missing { path, name, model }
        })?;
        if view.dtype() != Dtype::F32 {
            return Err(CheckpointError::Dtype {
                path: path.to_path_buf(),
                name: param.name.clone(),
                dtype: view.dtype(),
            });
        }
        if view.shape() != param.spec.shape.as_slice() {
            let (path, name, model) = here(&param.name);
            return Err(CheckpointError::Shape {
                path,
                name,
                model,
                got: view.shape().to_vec(),
                want: param.spec.shape.clone(),
            });
        }
        let floats: Vec<f32> = bytemuck::allocation::pod_collect_to_vec(view.data());
        values.push(floats);
    }
    // A batch-norm count may be absent (older fer files); where present it must be PyTorch's.
    let counts = batches_tracked_names(model);
    for name in counts
        .iter()
        .filter(|name| file.names().contains(&name.as_str()))
    {
        let view = file
            .tensor(name)
            .map_err(|error| format_error(path, error))?;
        if view.dtype() != Dtype::I64 || !view.shape().is_empty() {
            return Err(CheckpointError::Count {
                path: path.to_path_buf(),
                name: name.clone(),
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
            });
        }
    }
    if let Some(extra) = file.names().into_iter().find(|name| {
        !model.params.iter().any(|p| p.name == **name) && !counts.iter().any(|c| c == *name)
    }) {
        let (path, name, model) = here(extra);
        return Err(CheckpointError::Extra { path, name, model });
    }
    for (param, floats) in model.params.iter().zip(&values) {
        param.value.write(ctx, floats);
    }
    // Land the writes now rather than at the next step's submit.
    ctx.queue.submit([]);
    ctx.wait()?;
    Ok(())
}

fn format_error(path: &Path, error: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}
