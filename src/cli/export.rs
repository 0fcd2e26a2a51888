//! `fer export`: a checkpoint as an ONNX file.

use std::path::Path;

use anyhow::Context;
use fer::infer::classifier;
use fer::nn::models::{Architecture, ModelChoice};

/// Writes `checkpoint`'s model as ONNX to `onnx`: the model the checkpoint describes (or, for
/// one without a description, `asked` at `architecture`), its class names in the metadata.
pub fn export(
    asked: Option<&ModelChoice>,
    architecture: &Architecture,
    checkpoint: &Path,
    onnx: &Path,
) -> anyhow::Result<()> {
    let (description, _) = classifier::resolve(checkpoint, asked, architecture)?;
    let model = &description.model;
    let spec = model.spec(&description.architecture).with_context(|| {
        format!(
            "the {} model has no graph to export (it counts labels)",
            model.name()
        )
    })?;
    let bytes = std::fs::read(checkpoint)
        .with_context(|| format!("cannot read checkpoint {}", checkpoint.display()))?;
    let classes = (!description.classes.is_empty()).then_some(&description.classes[..]);
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
