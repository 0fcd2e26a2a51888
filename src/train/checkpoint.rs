//! Checkpoints as safetensors with the names and shapes of the equivalent PyTorch module's
//! `state_dict()`, so weights move both ways between fer and PyTorch (`load_state_dict` with
//! `strict=True`): every parameter and running statistic as F32, and each batch norm's
//! `num_batches_tracked` as the I64 scalar PyTorch keeps. fer's batch norms use a fixed
//! momentum, so that count is written for PyTorch and read back only to be checked.
//!
//! A checkpoint describes itself in the safetensors `__metadata__` (string to string, JSON
//! where a value has structure), so `fer eval` and `fer predict` need nothing else:
//!
//! | key | value |
//! | --- | --- |
//! | `fer_format` | [`FORMAT_VERSION`] |
//! | `fer_model` | the model's name: a built-in model's (`cnn`), or a model file's |
//! | `fer_architecture` | a built-in model's knobs, JSON ([`Architecture`]) |
//! | `fer_model_file` | a model file's graph, as `fer models --show` prints one |
//! | `fer_input` | the images it reads, JSON ([`ImageSpec`]) |
//! | `fer_classes` | the class names its outputs index, in order, a JSON list |
//! | `fer_load_size` | only where training read images larger and cropped them to `fer_input` (`fer train --load-size`): the side they were read at ([`load_size`]) |
//!
//! Checkpoints from before this (only `fer_model`) have no description and load with the
//! model named on the command line.
//!
//! A resumable checkpoint (`resume.safetensors`) holds the model's tensors as above, beside
//! them the run's other tensors under [`RESUME_PREFIX`] (the optimizer's state, the epoch's
//! loss sums so far), and where the run stands as JSON in the metadata key `fer_resume`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use thiserror::Error;

use crate::data::ImageSpec;
use crate::gpu::{GpuContext, GpuError};
use crate::graph::Model;
use crate::nn::models::{Architecture, ModelChoice, ModelKind};
use crate::nn::spec::ModelSpec;

/// The version of the `__metadata__` layout this fer writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The metadata key of [`load_size`].
const LOAD_SIZE: &str = "fer_load_size";

/// The prefix of a resumable checkpoint's tensors that are not the model's.
pub const RESUME_PREFIX: &str = "fer_resume/";

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
    #[error("checkpoint {path} describes itself badly: {message}")]
    Description { path: PathBuf, message: String },
    #[error(
        "the weights diverged: `{name}` holds {value} after step {steps}, so {path} was not \
         written (the one there, if any, is the last good checkpoint): lower the learning rate"
    )]
    NonFinite {
        path: PathBuf,
        name: String,
        value: f32,
        steps: u64,
    },
    #[error(
        "{}: tensor `{name}` holds {value}: the weights it holds diverged, so it cannot \
         classify; use an earlier checkpoint of the run",
        path.display()
    )]
    NonFiniteLoaded {
        path: PathBuf,
        name: String,
        value: f32,
    },
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// What a checkpoint says about itself: the model, the images it reads and the classes its
/// outputs name.
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    pub model: ModelChoice,
    /// A built-in model's knobs (a model file's graph has its sizes in it).
    pub architecture: Architecture,
    pub input: ImageSpec,
    pub classes: Vec<String>,
}

impl Description {
    fn metadata(&self) -> HashMap<String, String> {
        fn json(value: &impl serde::Serialize) -> String {
            serde_json::to_string(value).expect("specs, names and sizes serialise")
        }
        let mut entries = HashMap::from([
            ("fer_format".to_string(), FORMAT_VERSION.to_string()),
            ("fer_model".to_string(), self.model.name().to_string()),
            ("fer_input".to_string(), json(&self.input)),
            ("fer_classes".to_string(), json(&self.classes)),
        ]);
        match &self.model {
            ModelChoice::BuiltIn(_) => {
                entries.insert("fer_architecture".into(), json(&self.architecture));
            }
            ModelChoice::File(spec) => {
                entries.insert("fer_model_file".into(), spec.to_json());
            }
        }
        entries
    }

    /// The description in `metadata`; `None` when it has none (an older checkpoint).
    fn from_metadata(metadata: &HashMap<String, String>) -> Result<Option<Self>, String> {
        let Some(format) = metadata.get("fer_format") else {
            return Ok(None);
        };
        if format.parse::<u32>() != Ok(FORMAT_VERSION) {
            return Err(format!(
                "its format is `{format}`; this fer reads format {FORMAT_VERSION} (a newer fer \
                 wrote it?)"
            ));
        }
        let get = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| format!("it has no `{key}` entry"))
        };
        fn parse<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T, String> {
            serde_json::from_str(text).map_err(|error| format!("`{key}` is not valid: {error}"))
        }
        let name = get("fer_model")?;
        let (model, architecture) = match metadata.get("fer_model_file") {
            Some(graph) => {
                let spec = ModelSpec::parse(graph)
                    .map_err(|error| format!("its model graph is not valid: {error}"))?;
                (ModelChoice::File(spec), Architecture::default())
            }
            None => {
                let kind = ModelKind::from_str(name, false)
                    .map_err(|_| format!("`{name}` is not a built-in model of this fer"))?;
                let architecture = parse("fer_architecture", get("fer_architecture")?)?;
                (ModelChoice::BuiltIn(kind), architecture)
            }
        };
        let input: ImageSpec = parse("fer_input", get("fer_input")?)?;
        input.check()?;
        Ok(Some(Description {
            model,
            architecture,
            input,
            classes: parse("fer_classes", get("fer_classes")?)?,
        }))
    }
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
/// batch norm's `num_batches_tracked`, to `path`, atomically, with `description` in its
/// metadata, and the side of the square images training cropped to its input, if it did.
pub fn save_described(
    ctx: &GpuContext,
    model: &Model,
    steps: u64,
    description: &Description,
    load_size: Option<usize>,
    path: &Path,
) -> Result<(), CheckpointError> {
    let mut metadata = description.metadata();
    if let Some(side) = load_size {
        metadata.insert(LOAD_SIZE.to_string(), side.to_string());
    }
    write(ctx, model, steps, metadata, &[], path)
}

/// A resumable checkpoint as read back: where the run stood (JSON) and its tensors besides
/// the model's, by name without [`RESUME_PREFIX`].
pub struct Resumable {
    pub state: String,
    pub tensors: HashMap<String, Vec<f32>>,
}

impl Resumable {
    /// The tensor `name` of `len` values, or why the checkpoint lacks it.
    pub fn tensor(&self, name: &str, len: usize) -> Result<Vec<f32>, String> {
        match self.tensors.get(name) {
            Some(values) if values.len() == len => Ok(values.clone()),
            Some(values) => Err(format!(
                "its `{name}` has {} values where the run has {len}",
                values.len()
            )),
            None => Err(format!("it has no `{name}`")),
        }
    }
}

/// Writes `model`'s tensors, `extra` under [`RESUME_PREFIX`] and `state` as `fer_resume`, to
/// `path`, atomically (the previous file stays whole until the new one is).
pub fn save_resumable(
    ctx: &GpuContext,
    model: &Model,
    steps: u64,
    state: String,
    extra: &[(String, Vec<f32>)],
    path: &Path,
) -> Result<(), CheckpointError> {
    let metadata = HashMap::from([
        ("fer_model".to_string(), model.name.clone()),
        ("fer_resume".to_string(), state),
    ]);
    write(ctx, model, steps, metadata, extra, path)
}

/// Loads the resumable checkpoint at `path` into `model`, returning the rest of it.
pub fn load_resumable(
    ctx: &GpuContext,
    model: &Model,
    path: &Path,
) -> Result<Resumable, CheckpointError> {
    let bytes = read(path)?;
    let file = SafeTensors::deserialize(&bytes).map_err(|error| format_error(path, error))?;
    let (_, metadata) =
        SafeTensors::read_metadata(&bytes).map_err(|error| format_error(path, error))?;
    let state = metadata
        .metadata()
        .as_ref()
        .and_then(|entries| entries.get("fer_resume"))
        .cloned()
        .ok_or_else(|| {
            format_error(
                path,
                "it has no `fer_resume` entry: it is not a resumable checkpoint",
            )
        })?;
    let mut tensors = HashMap::new();
    for (name, view) in file.tensors() {
        let Some(name) = name.strip_prefix(RESUME_PREFIX) else {
            continue;
        };
        if view.dtype() != Dtype::F32 {
            return Err(CheckpointError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: view.dtype(),
            });
        }
        tensors.insert(
            name.to_string(),
            bytemuck::allocation::pod_collect_to_vec(view.data()),
        );
    }
    load_model(ctx, model, path, &file, |name| {
        name.starts_with(RESUME_PREFIX)
    })?;
    Ok(Resumable { state, tensors })
}

/// [`save_described`] without a description, as fer wrote checkpoints before it had one: only
/// the model's name.
pub fn save(
    ctx: &GpuContext,
    model: &Model,
    steps: u64,
    path: &Path,
) -> Result<(), CheckpointError> {
    let metadata = HashMap::from([("fer_model".to_string(), model.name.clone())]);
    write(ctx, model, steps, metadata, &[], path)
}

fn write(
    ctx: &GpuContext,
    model: &Model,
    steps: u64,
    metadata: HashMap<String, String>,
    extra: &[(String, Vec<f32>)],
    path: &Path,
) -> Result<(), CheckpointError> {
    let mut tensors = Vec::new();
    for param in model.params.iter() {
        let values: Vec<f32> = param.value.read(ctx)?;
        refuse_non_finite(&param.name, &values, steps, path)?;
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
    for (name, values) in extra {
        refuse_non_finite(name, values, steps, path)?;
        tensors.push((
            format!("{RESUME_PREFIX}{name}"),
            Dtype::F32,
            vec![values.len()],
            bytemuck::cast_slice(values).to_vec(),
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format_error(path, error))?;
    let bytes = safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|error| format_error(path, error))?;
    let bytes = with_sorted_metadata(bytes);
    crate::fsutil::write_atomically(path, &bytes).map_err(|reason| CheckpointError::Write {
        path: path.to_path_buf(),
        reason,
    })
}

/// Refuses to checkpoint a tensor holding a NaN or an infinity: the loss read back can still
/// be finite in the step that made the weights diverge, and such a checkpoint would replace the
/// last good one.
fn refuse_non_finite(
    name: &str,
    values: &[f32],
    steps: u64,
    path: &Path,
) -> Result<(), CheckpointError> {
    match values.iter().find(|v| !v.is_finite()) {
        Some(&value) => Err(CheckpointError::NonFinite {
            path: path.to_path_buf(),
            name: name.to_string(),
            value,
            steps,
        }),
        None => Ok(()),
    }
}

/// `bytes` (a safetensors file) with its `__metadata__` entries in key order: safetensors
/// writes them in a HashMap's order, which changes from run to run, and the same run should
/// give the same file. The header keeps its length, so the data offsets stay as they are.
fn with_sorted_metadata(mut bytes: Vec<u8>) -> Vec<u8> {
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = &bytes[8..8 + header_len];
    let mut json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).expect("safetensors wrote a JSON header");
    if let Some(serde_json::Value::Object(metadata)) = json.get_mut("__metadata__") {
        metadata.sort_keys();
    }
    let sorted = serde_json::to_vec(&json).expect("a JSON map serialises");
    assert!(
        sorted.len() <= header_len,
        "a reordered header is no longer"
    );
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + header_len].fill(b' ');
    bytes
}

/// Loads `path` into `model`, refusing any missing, extra, mistyped or wrong-shaped tensor
/// before anything is overwritten.
pub fn load(ctx: &GpuContext, model: &Model, path: &Path) -> Result<(), CheckpointError> {
    let bytes = read(path)?;
    let file = SafeTensors::deserialize(&bytes).map_err(|error| format_error(path, error))?;
    load_model(ctx, model, path, &file, |_| false)
}

fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(path).map_err(|reason| CheckpointError::Read {
        path: path.to_path_buf(),
        reason,
    })
}

/// Loads `model`'s tensors from `file` (read from `path`), refusing any tensor it does not
/// have unless `not_the_models` says it is another part of the file.
fn load_model(
    ctx: &GpuContext,
    model: &Model,
    path: &Path,
    file: &SafeTensors,
    not_the_models: impl Fn(&str) -> bool,
) -> Result<(), CheckpointError> {
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
        if let Some(&value) = floats.iter().find(|v| !v.is_finite()) {
            return Err(CheckpointError::NonFiniteLoaded {
                path: path.to_path_buf(),
                name: param.name.clone(),
                value,
            });
        }
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
        !model.params.iter().any(|p| p.name == **name)
            && !counts.iter().any(|c| c == *name)
            && !not_the_models(name)
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

/// The largest header safetensors itself reads.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// What the checkpoint at `path` says about itself, reading only its header; `None` for a
/// checkpoint written without a description.
pub fn describe(path: &Path) -> Result<Option<Description>, CheckpointError> {
    Description::from_metadata(&metadata(path)?).map_err(|message| CheckpointError::Description {
        path: path.to_path_buf(),
        message,
    })
}

/// The side of the square images the model at `path` was trained on random crops of (its
/// input cut from them), reading only its header; `None` where training read images at the
/// model's input.
pub fn load_size(path: &Path) -> Result<Option<usize>, CheckpointError> {
    let metadata = metadata(path)?;
    let Some(text) = metadata.get(LOAD_SIZE) else {
        return Ok(None);
    };
    let input = Description::from_metadata(&metadata).ok().flatten();
    match (text.parse::<usize>(), input.map(|d| d.input)) {
        (Ok(side), Some(input)) if side >= input.height && side >= input.width => Ok(Some(side)),
        _ => Err(CheckpointError::Description {
            path: path.to_path_buf(),
            message: format!("its `{LOAD_SIZE}` `{text}` is no side its input can be cut from"),
        }),
    }
}

/// The `__metadata__` of the safetensors file at `path`, reading only its header.
fn metadata(path: &Path) -> Result<HashMap<String, String>, CheckpointError> {
    let read_error = |reason| CheckpointError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                format_error(path, "it is shorter than a safetensors header")
            }
            _ => read_error(error),
        })?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER_BYTES {
        return Err(format_error(path, format!("a header of {length} bytes")));
    }
    let mut header = Vec::with_capacity(length as usize);
    file.take(length)
        .read_to_end(&mut header)
        .map_err(read_error)?;
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: HashMap<String, String>,
    }
    let header: Header =
        serde_json::from_slice(&header).map_err(|error| format_error(path, error))?;
    Ok(header.metadata)
}

fn format_error(path: &Path, error: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}
