//! `fer train`, `fer eval` and `fer demo`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde_json::json;

use fer::data::{
    self, synthetic, CacheStatus, Carving, Dataset, ImageSpec, LoadOptions, Split, Splits,
};
use fer::fsutil::FolderLock;
use fer::gpu::GpuContext;
use fer::infer::tta::{self, centre_of, load_size_of, read_at, Tta, TtaChoice};
use fer::infer::Classifier;
use fer::nn::models::{Architecture, ModelChoice, ModelKind};
use fer::nn::spec::ModelSpec;
use fer::report::{
    write_augmentations, write_pictures, write_results, ConfusionMatrix, RunMetrics, RunPictures,
};
use fer::train::checkpoint;
use fer::train::resume::{Checkpointing, Interval};
use fer::train::session::{self, input_spec, softmax_rows, EpochEvents, TrainSettings, Trained};

/// Where the images come from (a dataset path, or the built-in synthetic faces) and the spec
/// they are read at: the model's input, or larger by [`DataSource::load_size`].
pub struct DataSource {
    pub path: Option<PathBuf>,
    pub synthetic_train: usize,
    pub seed: u64,
    pub spec: ImageSpec,
    /// The model's class count, which the synthetic faces are drawn for.
    pub classes: usize,
    /// The share of train carved out as val when a class-folder dataset has no val split.
    pub val_split: Option<f64>,
    /// Read images at this side ([`load_size`]): train stays so, for training to crop at
    /// random; val and test are cut to `spec` about their centre.
    pub load_size: Option<usize>,
}

impl DataSource {
    pub fn load(&self) -> anyhow::Result<Splits> {
        let mut splits = self.load_at(&read_at(&self.spec, self.load_size))?;
        if self.load_size.is_some() {
            splits.val = centre_crop(&splits.val, &self.spec);
            splits.test = splits.test.map(|test| centre_crop(&test, &self.spec));
            let side = self.spec.height;
            eprintln!("  val and test: the centre {side}×{side} crops; train: random ones");
        }
        Ok(splits)
    }

    fn load_at(&self, spec: &ImageSpec) -> anyhow::Result<Splits> {
        let [channels, height, width] = spec.shape();
        let at = format!("{channels}×{height}×{width}");
        let Some(path) = &self.path else {
            let sizes = synthetic::SplitSizes {
                train: self.synthetic_train,
                val: self.synthetic_train / 4,
                test: self.synthetic_train / 4,
            };
            eprintln!(
                "data: synthetic faces at {at} (seed {}): {} train, {} val, {} test",
                self.seed, sizes.train, sizes.val, sizes.test
            );
            return Ok(synthetic::generate(self.seed, sizes, spec, self.classes)?);
        };
        let started = Instant::now();
        let carving = Carving {
            val_split: self.val_split,
            seed: self.seed,
        };
        let splits = data::load_carved(path, spec, LoadOptions::default(), carving)?;
        let report = &splits.report;
        let source = match &report.cache {
            CacheStatus::Hit(cache) => format!("from cache {}", cache.display()),
            CacheStatus::Written(cache) => format!("decoded, cached at {}", cache.display()),
            _ => "decoded".to_string(),
        };
        eprintln!(
            "data: {} at {at} ({source}, {:.1} s)",
            path.display(),
            started.elapsed().as_secs_f64()
        );
        if let Some(carved) = &report.carved {
            eprintln!("  {carved}");
        }
        for (name, split) in [
            ("train", Some(&splits.train)),
            ("val", Some(&splits.val)),
            ("test", splits.test.as_ref()),
        ] {
            if let Some(split) = split {
                eprintln!("  {name:<5} {}", split.summary());
            }
        }
        if report.skipped > 0 {
            eprintln!(
                "  skipped {} unreadable items, e.g. {}",
                report.skipped,
                report.skipped_examples.join("; ")
            );
        }
        for warning in &report.warnings {
            eprintln!("  warning: {warning}");
        }
        Ok(splits)
    }
}

/// The load size `--load-size` (or a recipe's `load_size`) asks of `model`: `None` where images
/// are read at its input (`asked` none, or its input's side); an error where crops of that size
/// cannot be its input.
pub fn load_size(
    model: &ModelChoice,
    input: &ImageSpec,
    asked: Option<usize>,
) -> anyhow::Result<Option<usize>> {
    let Some(side) = asked else {
        return Ok(None);
    };
    let name = model.name();
    let (height, width) = (input.height, input.width);
    if *model == ModelKind::Baseline.into() {
        bail!("--load-size {side}: the baseline reads no pixels, so it has nothing to crop");
    }
    if height != width {
        bail!("--load-size {side} cuts square crops, but model `{name}` reads {height}×{width} images");
    }
    if side < height {
        bail!(
            "--load-size {side} is smaller than the {height}×{width} images model `{name}` reads: \
             its crops are cut from images at least that large"
        );
    }
    Ok((side > height).then_some(side))
}

/// [`centre_of`] each image of `data`.
fn centre_crop(data: &Dataset, input: &ImageSpec) -> Dataset {
    let images = (0..data.len())
        .flat_map(|i| centre_of(data.image(i), data.spec(), input))
        .collect();
    Dataset::new(
        input.clone(),
        data.class_names().to_vec(),
        images,
        data.labels().to_vec(),
    )
}

/// Locks `results/<model>/` for each model a command will write, before it loads anything, so
/// a second run aimed at the same folder is refused at once rather than overwriting the first's
/// files. The locks are released when the returned values drop.
pub fn lock_results(results: &Path, models: &[&str]) -> anyhow::Result<Vec<FolderLock>> {
    if results.is_file() {
        bail!(
            "--results {} is a file: name a folder (made if missing)",
            results.display()
        );
    }
    models
        .iter()
        .map(|model| Ok(FolderLock::acquire(&results.join(model))?))
        .collect()
}

/// The run's resumable checkpoint: in `run_folder` (results/<model>/), or in the folder
/// `--resume DIR` names; and a Ctrl-C handler whose first interrupt asks the run to stop after
/// its step, with a checkpoint, and whose second exits at once.
pub fn checkpointing(
    run_folder: &Path,
    resume: Option<&Option<PathBuf>>,
    every: Option<Interval>,
) -> anyhow::Result<Checkpointing> {
    let folder = resume.and_then(Option::as_deref).unwrap_or(run_folder);
    let interrupt = Arc::new(AtomicBool::new(false));
    let raised = interrupt.clone();
    ctrlc::set_handler(move || {
        if raised.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: finishing the step and writing the checkpoint (Ctrl-C again exits now)"
        );
    })
    .context("cannot catch Ctrl-C")?;
    Ok(Checkpointing {
        path: folder.join("resume.safetensors"),
        every,
        resume: resume.is_some(),
        interrupt,
    })
}

/// The model `--model` or `--model-file` names (clap lets exactly one through).
pub fn model_choice(kind: Option<ModelKind>, file: Option<&Path>) -> anyhow::Result<ModelChoice> {
    match (kind, file) {
        (Some(kind), _) => Ok(kind.into()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read model file {}", path.display()))?;
            let in_file = || format!("model file {}", path.display());
            // A .toml file says the same in TOML's syntax (`[input]`, `[[nodes]]`).
            let json = match path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
            {
                true => toml::from_str::<serde_json::Value>(&text)
                    .with_context(in_file)?
                    .to_string(),
                false => text,
            };
            let spec = ModelSpec::parse(&json).with_context(in_file)?;
            Ok(ModelChoice::File(spec))
        }
        (None, None) => bail!("name a model: --model NAME or --model-file FILE"),
    }
}

/// One line per epoch, for people and for grep, with what the callbacks did (as Keras's
/// verbose callbacks say it): the lr's change, a new best, the switch of optimizer, and on a
/// line of its own why training stopped and which weights it kept. A model without a loss (the
/// baseline's certain guesses) shows `n/a`.
pub fn epoch_line(
    record: &fer::report::EpochRecord,
    events: &EpochEvents,
    epochs: usize,
) -> String {
    let loss = |value: f64| {
        if value.is_finite() {
            format!("{value:.4}")
        } else {
            "n/a".to_string()
        }
    };
    let mut line = format!(
        "epoch {}/{}  train_loss {}  train_acc {:.4}  val_loss {}  val_acc {:.4}  ({:.1} s)",
        record.epoch,
        epochs,
        loss(record.train_loss),
        record.train_acc,
        loss(record.val_loss),
        record.val_acc,
        record.seconds
    );
    if let Some((from, to)) = events.lr_change {
        let _ = write!(line, "  lr {from:.3e} → {to:.3e}");
    }
    if let Some(improved) = &events.improved {
        if let Some(previous) = improved.previous {
            let name = improved.monitor.name();
            let _ = write!(
                line,
                "  {name} improved from {previous:.4} to {:.4}",
                improved.best
            );
        }
    }
    if let Some(sgd) = &events.switch {
        let _ = write!(
            line,
            "  switching to a fresh SGD (lr {}, momentum {}{})",
            sgd.lr,
            sgd.momentum,
            if sgd.nesterov { ", nesterov" } else { "" }
        );
    }
    let restored = events.restored.map(|restored| {
        format!(
            "restored epoch {}'s weights ({} {:.4})",
            restored.epoch,
            restored.monitor.name(),
            restored.best
        )
    });
    match (&events.stop, restored) {
        (Some(stop), Some(restored)) => {
            let _ = write!(line, "\n{stop}; {restored}");
        }
        (Some(stop), None) => {
            let _ = write!(line, "\n{stop}");
        }
        (None, Some(restored)) => {
            let _ = write!(line, "\n{restored}, the best of the run");
        }
        (None, None) => {}
    }
    line
}

/// Trains, prints the epochs and the final report, writes `results/<model>/`.
pub fn train(
    ctx: &GpuContext,
    splits: &Splits,
    settings: &TrainSettings,
    results: &Path,
    command: &str,
) -> anyhow::Result<Trained> {
    let started = Instant::now();
    // The baseline only counts classes: one pass, whatever --epochs says.
    let epochs = if settings.model == ModelKind::Baseline.into() {
        1
    } else {
        settings.epochs
    };
    eprintln!(
        "training {} for {} epochs on {} images (batch {}) on {}",
        settings.model.name(),
        epochs,
        splits.train.len(),
        settings.epoch.batch_size,
        ctx.summary().name
    );
    if !settings.epoch.augment.is_none() {
        eprintln!("augmentation on the GPU: {}", settings.epoch.augment);
    }
    // What the checkpoints say of themselves. Val is read at the model's input; train larger
    // where training crops it (--load-size).
    let input = splits.val.spec();
    let load_size = load_size_of(splits.train.spec(), input);
    let description = checkpoint::Description {
        model: settings.model.clone(),
        architecture: settings.architecture.clone(),
        input: input.clone(),
        classes: splits.train.class_names().to_vec(),
    };
    let save = |model: &fer::graph::Model, steps: u64, path: &Path| {
        checkpoint::save_described(ctx, model, steps, &description, load_size, path)
    };
    // Each new best is written as it lands, so it survives a run stopped by hand.
    let best = results.join(settings.model.name()).join("best.safetensors");
    let mut best_written = Ok(());
    let trained = session::train(ctx, &splits.train, &splits.val, settings, |end| {
        println!("{}", epoch_line(end.record, end.events, epochs));
        if let (Some(model), Some(_), Ok(())) = (end.model, &end.events.improved, &best_written) {
            best_written = save(model, end.steps, &best);
        }
    })?;
    best_written?;
    let seconds = started.elapsed().as_secs_f64();
    let confusion = confusion(&splits.val, &trained.val_predictions)?;
    let run = json!({
        "command": command,
        "adapter": ctx.summary(),
        "settings": settings,
        "wall_seconds": seconds,
        "val_loss": trained.val.loss,
        "training_state": trained.state,
        "train_images": splits.train.len(),
        "val_images": splits.val.len(),
        "parameters": trained.model.as_ref().map(|model| model.params.trainable_count()),
    });
    let metrics = RunMetrics::new(
        settings.model.name(),
        confusion,
        trained.history.clone(),
        run,
    );
    println!("\n{}", metrics.text());
    let directory = write_results(results, &metrics)?;
    write_pictures(
        &directory,
        &RunPictures {
            train: &splits.train,
            val: &splits.val,
            val_predictions: &trained.val_predictions,
            val_probabilities: &trained.val_probabilities,
            history: &trained.history,
        },
    )?;
    if let Some(batch) = &trained.augmented {
        let caption = format!("--augment {}", settings.epoch.augment);
        write_augmentations(&directory, batch, input, &caption)?;
    }
    if let Some(model) = &trained.model {
        save(model, trained.steps, &directory.join("model.safetensors"))?;
    }
    println!("wrote {} ({:.1} s in all)", directory.display(), seconds);
    if let Some(checkpointing) = settings
        .checkpointing
        .as_ref()
        .filter(|_| trained.interrupted)
    {
        let resume = if checkpointing.resume {
            ""
        } else {
            " --resume"
        };
        println!(
            "interrupted after step {}: {} holds the run; continue it with\n  {command}{resume}",
            trained.steps,
            checkpointing.path.display()
        );
    }
    Ok(trained)
}

fn confusion(data: &Dataset, predictions: &[usize]) -> anyhow::Result<ConfusionMatrix> {
    let truth: Vec<usize> = data.labels().iter().map(|&l| l as usize).collect();
    let names: Vec<&str> = data.class_names().iter().map(String::as_str).collect();
    Ok(ConfusionMatrix::from_labels(&truth, predictions, &names)?)
}

/// What `fer eval` needs besides the GPU.
pub struct EvalRequest<'a> {
    /// The model the command line names; a self-describing checkpoint needs none.
    pub model: Option<&'a ModelChoice>,
    pub architecture: &'a Architecture,
    pub checkpoint: &'a Path,
    /// A dataset folder or CSV; `None` for the synthetic faces.
    pub data: Option<&'a Path>,
    pub synthetic_train: usize,
    pub seed: u64,
    pub split: Split,
    pub batch_size: usize,
    pub predictions: Option<&'a Path>,
    /// As in training: the share of train carved out as val when the dataset has no val split.
    pub val_split: Option<f64>,
    /// Average the probabilities over these views of each image.
    pub tta: Option<TtaChoice>,
}

/// Evaluates a checkpoint on one split; prints the report, optionally writes per-image
/// predictions with class probabilities as CSV, each row naming its image.
pub fn eval(ctx: &GpuContext, request: &EvalRequest) -> anyhow::Result<f64> {
    // Its folder is made first, so one that cannot be made is said before the work.
    if let Some(folder) = request.predictions.and_then(Path::parent) {
        super::predict::create_folder(folder)?;
    }
    let classifier =
        Classifier::open(ctx, request.checkpoint, request.model, request.architecture)?;
    let description = &classifier.description;
    let (input, classes) = (&description.input, description.classes.len());
    let load_size = load_size_of(&classifier.read, input);
    let tta = request
        .tta
        .map(|choice| choice.resolve(input, load_size, request.checkpoint))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    // Ten crops cut their views from images read larger; the others see the centre crop of
    // images read at the load size, as validation did.
    let (data, sources) = match tta {
        Some(tencrop @ Tta::TenCrop { .. }) => {
            let spec = tencrop.image_spec(input).map_err(anyhow::Error::msg)?;
            eval_split(request, &spec, classes)?
        }
        _ => {
            let (data, sources) = eval_split(request, &read_at(input, load_size), classes)?;
            match load_size {
                Some(_) => (centre_crop(&data, input), sources),
                None => (data, sources),
            }
        }
    };
    // A described checkpoint names its classes; the data's are matched to them by name.
    let data = if classifier.self_described {
        with_classes(data, &description.classes).with_context(|| {
            format!(
                "checkpoint {} predicts {:?}",
                request.checkpoint.display(),
                description.classes
            )
        })?
    } else {
        data
    };
    let (probabilities, totals) = match &tta {
        Some(tta) => {
            let probabilities =
                classifier.averaged_probabilities(ctx, &data, request.batch_size, tta)?;
            let totals = tta::totals(&probabilities, data.labels());
            eprintln!("test-time augmentation: {tta}");
            (probabilities, totals)
        }
        None => {
            let evaluation = classifier.evaluate(ctx, &data, request.batch_size)?;
            let probabilities = softmax_rows(&evaluation.logits, data.class_count());
            (probabilities, evaluation.totals)
        }
    };
    let predictions: Vec<usize> = probabilities
        .iter()
        .map(|row| session::argmax(row))
        .collect();
    let confusion = confusion(&data, &predictions)?;
    let metrics = RunMetrics::new(
        description.model.name(),
        confusion,
        Default::default(),
        json!({}),
    );
    println!("{}", metrics.text());
    println!("loss {:.4}  accuracy {:.4}", totals.loss, totals.accuracy);
    if let Some(path) = request.predictions {
        let names = data.class_names();
        let columns: Vec<String> = names.iter().map(|c| format!("p_{c}")).collect();
        let mut csv = format!("index,path,true,predicted,{}\n", columns.join(","));
        for (i, row) in probabilities.iter().enumerate() {
            let _ = write!(
                csv,
                "{i},{},{},{}",
                csv_field(&sources[i]),
                names[data.labels()[i] as usize],
                names[predictions[i]]
            );
            for p in row {
                let _ = write!(csv, ",{p:.6}");
            }
            csv.push('\n');
        }
        fer::fsutil::write_atomically(path, csv.as_bytes())
            .with_context(|| format!("cannot write predictions to {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(totals.accuracy)
}

/// The split `fer eval` asked for at `spec`, with each image's source: only that split of a
/// dataset on disk (the others need not exist), or of the synthetic faces (`synthetic:INDEX`).
fn eval_split(
    request: &EvalRequest,
    spec: &ImageSpec,
    classes: usize,
) -> anyhow::Result<(Dataset, Vec<String>)> {
    let Some(path) = request.data else {
        let splits = DataSource {
            path: None,
            synthetic_train: request.synthetic_train,
            seed: request.seed,
            spec: spec.clone(),
            classes,
            val_split: None,
            load_size: None,
        }
        .load()?;
        let data = match request.split {
            Split::Train => splits.train,
            Split::Val => splits.val,
            Split::Test => splits
                .test
                .context("the synthetic faces have no test split")?,
        };
        let sources = (0..data.len()).map(|i| format!("synthetic:{i}")).collect();
        return Ok((data, sources));
    };
    let carving = Carving {
        val_split: request.val_split,
        seed: request.seed,
    };
    let loaded = data::load_split(path, request.split, spec, carving)?;
    eprintln!(
        "data: {} split of {}: {}",
        request.split.name(),
        path.display(),
        loaded.data.summary()
    );
    let report = &loaded.report;
    if report.skipped > 0 {
        eprintln!(
            "  skipped {} unreadable items, e.g. {}",
            report.skipped,
            report.skipped_examples.join("; ")
        );
    }
    Ok((loaded.data, loaded.sources))
}

/// `data` relabelled by `classes` (a checkpoint's), which must name each of its classes.
fn with_classes(data: Dataset, classes: &[String]) -> anyhow::Result<Dataset> {
    if data.class_names() == classes {
        return Ok(data);
    }
    let index: Vec<u8> = data
        .class_names()
        .iter()
        .map(|name| {
            classes
                .iter()
                .position(|class| class == name)
                .map(|i| i as u8)
                .with_context(|| format!("the data has class `{name}`, which it does not"))
        })
        .collect::<anyhow::Result<_>>()?;
    let labels = data.labels().iter().map(|&l| index[l as usize]).collect();
    Ok(Dataset::new(
        data.spec().clone(),
        classes.to_vec(),
        data.images().to_vec(),
        labels,
    ))
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Which models `fer demo` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoModels {
    /// The four-model study's: baseline, softmax, mlp, cnn.
    Study,
    /// The study's four, then the source studies' models that read 48×48 faces of seven
    /// classes (all but keras_cnn, which reads 222×222 faces of six).
    All,
}

impl DemoModels {
    pub fn kinds(self) -> Vec<ModelKind> {
        match self {
            DemoModels::Study => ModelKind::STUDY.to_vec(),
            // ALL lists the study's four first.
            DemoModels::All => ModelKind::ALL
                .into_iter()
                .filter(|&kind| kind != ModelKind::KerasCnn)
                .collect(),
        }
    }
}

/// How `fer demo` sizes itself: full size on a real GPU; on a software adapter a smaller
/// synthetic set, a narrower cnn and the source studies' models at an eighth of their width
/// on fewer faces for fewer epochs, so every model finishes in minutes on a laptop CPU.
pub struct DemoScale {
    pub synthetic_train: usize,
    pub architecture: Architecture,
    /// The source studies' models' (basic_cnn ..) training faces, and the most epochs they
    /// train (none: the demo's): ten epochs of unet or newnet on 2,800 faces take hours on
    /// lavapipe.
    pub source_train: usize,
    pub source_most_epochs: Option<usize>,
    pub note: Option<String>,
}

/// The source studies' models in `fer demo` on a software adapter: enough to show each one
/// trains. On lavapipe with 2 cores loaded by other builds (the scaled cnn at 120 s an epoch,
/// 14 s unloaded) the seven took 625 s at this size, newnet the longest (221 s).
const SOFTWARE_SOURCE_FACES: usize = 700;
const SOFTWARE_SOURCE_EPOCHS: usize = 1;

impl DemoScale {
    pub fn for_adapter(ctx: &GpuContext) -> Self {
        if ctx.summary().is_software() {
            let architecture = Architecture {
                width_divisor: 8,
                ..Architecture::scaled_for_software()
            };
            DemoScale {
                synthetic_train: 2800,
                note: Some(format!(
                    "{}, the source studies' models at 1/{} of their width on {} faces for at \
                     most {} epoch(s); run on a GPU for full size",
                    architecture.scaled_cnn_note(),
                    architecture.width_divisor,
                    SOFTWARE_SOURCE_FACES,
                    SOFTWARE_SOURCE_EPOCHS,
                )),
                architecture,
                source_train: SOFTWARE_SOURCE_FACES,
                source_most_epochs: Some(SOFTWARE_SOURCE_EPOCHS),
            }
        } else {
            DemoScale {
                synthetic_train: 11200,
                architecture: Architecture::default(),
                source_train: 11200,
                source_most_epochs: None,
                note: None,
            }
        }
    }
}

/// The models on the synthetic default, one after another, then a comparison table.
pub fn demo(
    ctx: &GpuContext,
    models: DemoModels,
    seed: u64,
    epochs: usize,
    results: &Path,
) -> anyhow::Result<()> {
    let scale = DemoScale::for_adapter(ctx);
    if let Some(note) = scale.note {
        eprintln!("{note}");
    }
    let mut loaded: Option<Splits> = None;
    let mut rows = Vec::new();
    let which = models
        .to_possible_value()
        .map(|value| value.get_name().to_string())
        .unwrap_or_default();
    let command = format!("fer demo --models {which} --seed {seed} --epochs {epochs}");
    for model in models.kinds() {
        // Each model's kernels get their own tuning time.
        ctx.restart_tuning_budget();
        let mut settings = TrainSettings::study(model, seed);
        settings.architecture = scale.architecture.clone();
        let (synthetic_train, most_epochs) = if ModelKind::STUDY.contains(&model) {
            (scale.synthetic_train, None)
        } else {
            (scale.source_train, scale.source_most_epochs)
        };
        // Models that read the same spec, count and classes share one set of faces.
        let spec = input_spec(model, &settings.architecture);
        let classes = ModelChoice::from(model).classes(&settings.architecture)?;
        let splits = match loaded.take() {
            Some(splits)
                if *splits.train.spec() == spec
                    && splits.train.len() == synthetic_train
                    && splits.train.class_count() == classes =>
            {
                splits
            }
            _ => DataSource {
                path: None,
                synthetic_train,
                seed,
                spec,
                classes,
                val_split: None,
                load_size: None,
            }
            .load()?,
        };
        let splits = loaded.insert(splits);
        settings.epochs = most_epochs.map_or(epochs, |most| epochs.min(most));
        let started = Instant::now();
        let trained = train(ctx, splits, &settings, results, &command)?;
        let params = trained
            .model
            .as_ref()
            .map_or(0, |m| m.params.trainable_count());
        rows.push((
            model,
            params,
            (synthetic_train, settings.epochs),
            trained.val.accuracy,
            started.elapsed().as_secs_f64(),
        ));
        println!();
    }
    println!("model          parameters   faces  epochs   val accuracy   train time");
    for (model, params, (faces, epochs), accuracy, seconds) in rows {
        println!(
            "{:<13} {:>11} {:>7} {:>7} {:>14.4} {:>10.1} s",
            model.name(),
            params,
            faces,
            epochs,
            accuracy,
            seconds
        );
    }
    Ok(())
}
