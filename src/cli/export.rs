//! `fer export`: a checkpoint as an ONNX file.

use std::path::Path;

use anyhow::Context;
use fer::nn::models::{Architecture, ModelChoice};

/// Writes `checkpoint`'s model as ONNX to `onnx`, with `classes` as its metadata when known.
pub fn export(
    model: &ModelChoice,
    architecture: &Architecture,
    checkpoint: &Path,
    onnx: &Path,
    classes: Option<&[String]>,
) -> anyhow::Result<()> {
    let spec = model.spec(architecture).with_context(|| {
        format!(
            "the {} model has no graph to export (it counts labels)",
            model.name()
        )
    })?;
    let bytes = std::fs::read(checkpoint)
        .with_context(|| format!("cannot read checkpoint {}", checkpoint.display()))?;
    let file = fer::onnx::export(&spec, &bytes, classes)
        .with_context(|| format!("cannot export {}", checkpoint.display()))?;
    fer::fsutil::write_atomically(onnx, &file)
        .with_context(|| format!("cannot write {}", onnx.display()))?;
    println!(
        "wrote {} ({}, ONNX opset {}, {:.1} MB)",
        onnx.display(),
        spec.name,
        fer::onnx::OPSET,
        file.len() as f64 / 1e6
    );
    Ok(())
}
