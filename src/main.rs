mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use cli::options;

use fer::bench;
use fer::gpu::{BackendChoice, GpuContext, GpuOptions, TimingSource};
use fer::kernels::matmul::MatmulVariant;
use fer::nn::models::{spec, Architecture, ModelChoice, ModelKind};
use fer::profile::Pass;
use fer::train::augmentation::Augmentation;
use fer::train::early_stopping::EarlyStopping;
use fer::train::loss::{ClassWeights, LossKind};
use fer::train::optimizer::{L2Penalty, OptimizerKind};
use fer::train::recipe::Recipe;
use fer::train::resume::Interval;
use fer::train::schedule::{OptimizerSwitch, Schedule};
use fer::train::session::TrainSettings;

/// fer: train facial-expression models on any GPU (Vulkan, Metal, DX12, GL) through wgpu.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Graphics API to use (default: any; also FER_BACKEND).
    #[arg(long, global = true, value_enum)]
    backend: Option<BackendChoice>,
    /// Use the adapter whose name contains this text (also FER_ADAPTER).
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Don't time kernel variants on this adapter; use the usual choice for its kind.
    #[arg(long, global = true)]
    no_autotune: bool,
    /// Seconds per model that timing kernel variants may take; shapes left over run their
    /// usual kernel this run and are timed on a later one.
    #[arg(long, global = true, default_value_t = 5.0, value_name = "SECONDS")]
    #[arg(value_parser = options::non_negative::<f64>, allow_hyphen_values = true)]
    tune_budget: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the adapter fer would use: backend, driver, limits and features.
    Info {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the built-in models (input, classes, parameters, FLOPs, memory at a batch size),
    /// or print one as a model file to start your own from.
    Models {
        /// Print this model as a model file (JSON) instead of the list.
        #[arg(long, value_enum)]
        show: Option<ModelKind>,
        /// The batch size the memory column is for.
        #[arg(long, default_value_t = 64, value_parser = cli::options::at_least::<1>)]
        batch: usize,
        /// Print the list as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Train one of the study's models and write results/<model>/.
    Train(Box<TrainArgs>),
    /// List the built-in training recipes, or print one as TOML to copy and edit.
    Recipes {
        /// Print this built-in recipe (study or best) as TOML instead of the list.
        #[arg(long)]
        show: Option<String>,
        /// The model whose study recipe --show prints.
        #[arg(long, value_enum, default_value_t = ModelKind::Cnn)]
        model: ModelKind,
    },
    /// Evaluate a checkpoint on a split of a dataset.
    Eval(EvalArgs),
    /// Write a checkpoint's model as an ONNX file (for ONNX Runtime, browsers, phones).
    Export(ExportArgs),
    /// Find the faces in photos and classify each with a checkpoint.
    Predict(PredictArgs),
    /// Classify the faces of a video, a folder of frames or a camera live, in a window.
    Live(LiveArgs),
    /// Train the study's four models (or --models all) on synthetic faces and compare them
    /// (scaled down on a CPU adapter).
    Demo {
        /// The four-model study's models, or all that read its 48×48 faces.
        #[arg(long, value_enum, default_value = "study")]
        models: cli::train::DemoModels,
        #[arg(long, default_value_t = 10)]
        #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
        epochs: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Measure kernel throughput on this adapter.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Time every kernel of a training step: GPU time, share, GFLOP/s and GB/s per kernel.
    Profile(ProfileArgs),
    /// Compare finished runs: their val accuracy curves on one plot (comparison.png) and a
    /// table of accuracy, best epoch, macro-F1, time and parameters.
    Report {
        /// Results folders of runs (results/<model>/) or their metrics.json files.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Folder to write comparison.png into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Print the table as JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ProfileArgs {
    #[arg(long, value_enum)]
    model: ModelKind,
    #[arg(long, default_value_t = 64)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    batch: usize,
    /// Steps to profile after the warm-up.
    #[arg(long, default_value_t = 3)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    steps: usize,
    /// Training steps before profiling (pipelines compile, caches settle); at least one.
    #[arg(long, default_value_t = 2)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    warmup: usize,
    /// Profile the study's full-size cnn even on a software adapter.
    #[arg(long)]
    full: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write a Chrome / Perfetto trace of the profiled steps to this file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Profile the step with this augmentation, as `fer train --augment` takes it.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "inference")]
    augment: Option<Augmentation>,
    /// Profile the inference forward pass (what `fer predict` and `fer live` run: dropout off,
    /// batch norm on running statistics) instead of a training step.
    #[arg(long)]
    inference: bool,
}

#[derive(Args)]
struct DataArgs {
    /// Dataset: a folder with train/<class>/ and val/<class>/ (or validation/), or the FER2013
    /// CSV. Default: built-in synthetic faces.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Training images of the synthetic default (val and test get a quarter each, so at
    /// least 4).
    #[arg(long, default_value_t = 2800)]
    #[arg(value_parser = options::at_least::<4>, allow_hyphen_values = true)]
    synthetic_train: usize,
    /// When a class-folder dataset has no val/ folder, carve this share of train out as val
    /// (per class, drawn by --seed). One folder of class folders splits 70/15/15 anyway.
    #[arg(long)]
    #[arg(value_parser = options::fraction::<f64>, allow_hyphen_values = true)]
    val_split: Option<f64>,
}

/// The models' shapes; defaults are the study's. Eval needs the same values as training.
#[derive(Args)]
struct ArchArgs {
    /// Sizes of the mlp's two hidden layers, comma-separated (128,64).
    #[arg(long, value_delimiter = ',', default_values_t = Architecture::default().mlp_hidden)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    mlp_hidden: Vec<usize>,
    #[arg(long, default_value_t = Architecture::default().mlp_dropout)]
    #[arg(value_parser = options::fraction::<f32>, allow_hyphen_values = true)]
    mlp_dropout: f32,
    /// Output channels of the cnn's four conv blocks, comma-separated (64,128,512,512).
    #[arg(long, value_delimiter = ',', default_values_t = Architecture::default().cnn_channels)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    cnn_channels: Vec<usize>,
    /// Sizes of the cnn's two hidden Linear layers, comma-separated (256,512).
    #[arg(long, value_delimiter = ',', default_values_t = Architecture::default().cnn_hidden)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    cnn_hidden: Vec<usize>,
    #[arg(long, default_value_t = Architecture::default().cnn_dropout)]
    #[arg(value_parser = options::fraction::<f32>, allow_hyphen_values = true)]
    cnn_dropout: f32,
    /// Divide every channel count and hidden width of the source studies' models (basic_cnn
    /// .. keras_cnn) by this: the same graph, narrower and faster.
    #[arg(long, default_value_t = 1)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    width_divisor: usize,
}

impl ArchArgs {
    fn architecture(&self) -> anyhow::Result<Architecture> {
        fn exactly<const N: usize>(values: &[usize], flag: &str) -> anyhow::Result<[usize; N]> {
            values
                .try_into()
                .map_err(|_| anyhow::anyhow!("--{flag} takes {N} comma-separated sizes"))
        }
        Ok(Architecture {
            mlp_hidden: exactly(&self.mlp_hidden, "mlp-hidden")?,
            mlp_dropout: self.mlp_dropout,
            cnn_channels: exactly(&self.cnn_channels, "cnn-channels")?,
            cnn_hidden: exactly(&self.cnn_hidden, "cnn-hidden")?,
            cnn_dropout: self.cnn_dropout,
            width_divisor: self.width_divisor,
        })
    }
}

/// Which model: a built-in one, or a model file (eval and predict read it from a
/// self-describing checkpoint when neither is given).
#[derive(Args)]
#[group(multiple = false)]
struct ModelArgs {
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// A model file (JSON, as `fer models --show NAME` prints one) instead of a built-in model.
    #[arg(long)]
    model_file: Option<PathBuf>,
}

impl ModelArgs {
    fn choice(&self) -> anyhow::Result<ModelChoice> {
        cli::train::model_choice(self.model, self.model_file.as_deref())
    }

    /// The model named, if one is.
    fn named(&self) -> anyhow::Result<Option<ModelChoice>> {
        if self.model.is_none() && self.model_file.is_none() {
            return Ok(None);
        }
        self.choice().map(Some)
    }
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    architecture: ArchArgs,
    /// How to train: `study` (each model's recipe from its study), `best` (fer's own) or a
    /// TOML file (`fer recipes --show best` prints one); the flags below override its values.
    #[arg(long, default_value = "study")]
    recipe: String,
    /// Default: the recipe's (the four-model study's: 10).
    #[arg(long)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    epochs: Option<usize>,
    /// Default: the recipe's (the four-model study's: 64).
    #[arg(long)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    batch_size: Option<usize>,
    /// Default: sgd for softmax, adam for mlp and cnn (the study's recipe).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerKind>,
    /// Default: 0.01 for softmax, 0.001 for mlp and cnn.
    #[arg(long)]
    #[arg(value_parser = options::positive::<f64>, allow_hyphen_values = true)]
    lr: Option<f64>,
    /// Default: the recipe's, else 0.
    #[arg(long)]
    #[arg(value_parser = options::fraction::<f64>, allow_hyphen_values = true)]
    momentum: Option<f64>,
    #[arg(long)]
    nesterov: bool,
    /// Default: the recipe's, else 0.
    #[arg(long)]
    #[arg(value_parser = options::non_negative::<f64>, allow_hyphen_values = true)]
    weight_decay: Option<f64>,
    /// Keras's kernel_regularizer=l2(λ) on chosen tensors: `dense=λ` (every Linear weight),
    /// `conv=λ` (every Conv2d weight) or `NAME_PATTERN=λ` (state_dict names, `*` for any
    /// characters, e.g. `classifier.*.weight=1e-4`); comma-separated or repeated. Adds 2λ·w to
    /// those gradients (coupled weight decay 2λ), beside --weight-decay on every tensor.
    #[arg(long, value_delimiter = ',')]
    l2: Vec<L2Penalty>,
    /// Default: the recipe's, else 0.
    #[arg(long)]
    #[arg(value_parser = options::fraction::<f32>, allow_hyphen_values = true)]
    label_smoothing: Option<f32>,
    /// `ce` (cross-entropy), or `focal:gamma=G`: the multi-class focal loss
    /// α·(1 − p)^γ·(−log p) of the true class's p, averaged over images, with the class weights
    /// as α (`focal` alone is γ = 2; no label smoothing). Default: the recipe's, else ce.
    #[arg(long)]
    loss: Option<LossKind>,
    /// Weigh the training loss per class: `balanced` (n_images / (n_classes · n_images_of_class)
    /// on the training split, as sklearn and Keras), or one weight per class in the dataset's
    /// class order, e.g. `1,9,1,1,1,1,1`. The validation loss stays unweighted.
    #[arg(long)]
    class_weights: Option<ClassWeights>,
    /// Augment each training batch on the GPU, e.g. rotate=20,shift=0.2,shear=0.2,zoom=0.2,
    /// flip,crop=4,resized_crop=0.8,brightness=0.2,contrast=0.2,saturation=0.2,hue=0.05,
    /// erase=0.5 (fill=nearest|constant|reflect for the border).
    #[arg(long, allow_hyphen_values = true)]
    augment: Option<Augmentation>,
    /// Flip training images horizontally at random (short for --augment flip).
    #[arg(long)]
    flip: bool,
    /// Read the images at this side and train on random crops of the model's input size, the
    /// first stage of the augmentation (e.g. 48 for a model reading 44×44); validation and
    /// `fer eval` take the centre crop, `fer eval --tta tencrop` the ten crops. Default: the
    /// recipe's, else the model's input.
    #[arg(long, value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    load_size: Option<usize>,
    /// A learning-rate schedule with PyTorch's semantics: step:step_size=10,gamma=0.1,
    /// multistep:milestones=30,60,gamma=0.1, exponential:gamma=0.95,
    /// cosine:warmup=2,start_factor=0.33,eta_min=0 (per step), onecycle:max_lr=0.01 (per step;
    /// pct_start, div_factor, final_div_factor, three_phase, anneal=cos|linear), or
    /// plateau:factor=0.1,patience=10 (monitor=val_loss|val_acc, mode, threshold,
    /// threshold_mode=rel|abs, cooldown, min_lr, eps).
    #[arg(long, value_parser = Schedule::parse, allow_hyphen_values = true)]
    schedule: Option<Schedule>,
    /// From this epoch on, train with a fresh SGD optimizer: EPOCH[:lr=0.01,momentum=0.9,
    /// nesterov,weight_decay=..] (Keras's SGD defaults; weight decay: the run's).
    #[arg(long, value_parser = OptimizerSwitch::parse, allow_hyphen_values = true)]
    switch_to_sgd: Option<OptimizerSwitch>,
    /// Stop when val_loss or val_acc stops improving, and end with the best epoch's weights:
    /// val_loss:patience=10,min_delta=0 (restore=false keeps the last epoch's).
    #[arg(long, value_parser = EarlyStopping::parse, allow_hyphen_values = true)]
    early_stopping: Option<EarlyStopping>,
    /// Fixes initialisation, shuffling, dropout, augmentation and the synthetic data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where results/<model>/ goes.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Hide the progress bars.
    #[arg(long)]
    quiet: bool,
    /// Read the running loss back (progress, NaN check) every this many steps.
    #[arg(long, default_value_t = 20)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    readback_every: usize,
    /// Print the run's memory and step FLOPs against the adapter's limits, without training.
    #[arg(long)]
    dry_run: bool,
    /// Continue this run from its resumable checkpoint, results/<model>/resume.safetensors (or
    /// DIR/resume.safetensors), written at the end of every epoch and on Ctrl-C; the options
    /// must be the run's, but --epochs may grow.
    #[arg(long, num_args = 0..=1, value_name = "DIR")]
    resume: Option<Option<PathBuf>>,
    /// Also write the resumable checkpoint every this many training steps (500) or this much
    /// time (90s, 10m, 2h).
    #[arg(long, value_name = "STEPS|TIME", allow_hyphen_values = true)]
    checkpoint_every: Option<Interval>,
}

impl TrainArgs {
    /// The recipe `--recipe` names, for the model `--model` names.
    fn recipe(&self) -> anyhow::Result<Recipe> {
        cli::recipes::load(&self.recipe, &self.model.choice()?)
    }

    /// The values given on the command line, as a recipe that overrides `--recipe`'s.
    fn flags(&self) -> Recipe {
        Recipe {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov.then_some(true),
            weight_decay: self.weight_decay,
            l2: (!self.l2.is_empty()).then(|| self.l2.clone()),
            label_smoothing: self.label_smoothing,
            loss: self.loss,
            class_weights: self.class_weights.clone(),
            augment: self.augment.clone(),
            schedule: self.schedule.clone(),
            switch_to_sgd: self.switch_to_sgd.clone(),
            early_stopping: self.early_stopping.clone(),
            val_split: self.data.val_split,
            load_size: self.load_size,
            tta: None,
        }
    }

    /// The run these options ask for: the model's study defaults, then `recipe`'s values, then
    /// every option given on the command line.
    fn settings(&self, recipe: &Recipe) -> anyhow::Result<TrainSettings> {
        let mut settings = TrainSettings::study(self.model.choice()?, self.seed);
        settings.architecture = self.architecture.architecture()?;
        recipe.apply(&mut settings);
        self.flags().apply(&mut settings);
        let augment = &mut settings.epoch.augment;
        if self.flip && augment.flip == 0.0 {
            augment.flip = 0.5;
        }
        augment
            .check(&settings.model.input(&settings.architecture))
            .map_err(|reason| anyhow::anyhow!("--augment {augment}: {reason}"))?;
        settings.epoch.readback_every = self.readback_every;
        settings.progress = !self.quiet;
        Ok(settings)
    }
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    checkpoint: PathBuf,
    #[command(flatten)]
    architecture: ArchArgs,
    /// The ONNX file to write.
    #[arg(long)]
    onnx: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    checkpoint: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    architecture: ArchArgs,
    /// Synthetic data is drawn from this seed (use the training run's).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = SplitArg::Val)]
    split: SplitArg,
    #[arg(long, default_value_t = 64)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    batch_size: usize,
    /// Write each image's prediction and class probabilities to this CSV file.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Average the class probabilities over the image and its mirror image (`flip`), or over
    /// ten crops (`tencrop:CROP[@SIZE]`: the corners and centre of images read at SIZE, 48
    /// unless given, and their mirror images; the model must read CROP×CROP images). `tencrop`
    /// alone: the ten crops at the load size of a model trained with --load-size.
    #[arg(long)]
    tta: Option<fer::infer::tta::TtaChoice>,
}

#[derive(Args)]
struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    architecture: ArchArgs,
    #[command(flatten)]
    request: cli::predict::PredictRequest,
}

#[derive(Args)]
struct LiveArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    architecture: ArchArgs,
    #[command(flatten)]
    request: cli::live::LiveRequest,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SplitArg {
    Train,
    Val,
    Test,
}

impl From<SplitArg> for fer::data::Split {
    fn from(split: SplitArg) -> Self {
        match split {
            SplitArg::Train => Self::Train,
            SplitArg::Val => Self::Val,
            SplitArg::Test => Self::Test,
        }
    }
}

#[derive(Subcommand)]
enum BenchCommand {
    /// GFLOP/s of each matmul variant on square sizes and the models' shapes, vs the CPU twin.
    Matmul {
        /// Square sizes to measure (n for n×n×n).
        #[arg(long, value_delimiter = ',', default_values_t = [256, 512, 1024, 2048])]
        #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
        sizes: Vec<usize>,
        /// Variants to measure.
        #[arg(long, value_delimiter = ',', value_enum, default_values_t = MatmulVariant::ALL)]
        variants: Vec<MatmulVariant>,
        /// Skip the products of the mlp and cnn layers.
        #[arg(long)]
        no_model_shapes: bool,
        /// About how long to time each case after its warm-up run.
        #[arg(long, default_value_t = 1.0)]
        #[arg(value_parser = options::non_negative::<f64>, allow_hyphen_values = true)]
        seconds: f64,
        /// Print JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// This adapter's attainable f32 FMA GFLOP/s and memory bandwidth (copy and read), the
    /// yardsticks for "fraction of peak".
    Peak {
        /// Size of each bandwidth buffer (default: 256 on a GPU, 128 on a software adapter;
        /// at most the adapter's storage binding limit).
        #[arg(long)]
        #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
        buffer_mib: Option<usize>,
        /// Workgroups of 256 invocations in the FMA kernel (default: 8192 on a GPU, 256 on a
        /// software adapter).
        #[arg(long)]
        #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
        fma_workgroups: Option<usize>,
        /// Timed runs per kernel (default: 20 on a GPU, 5 on a software adapter).
        #[arg(long)]
        #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
        runs: Option<usize>,
        /// Print JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What one frame costs `fer predict` per stage (decode, detect, crop, classify, draw), and
    /// each model's images/s at several batch sizes.
    Infer(cli::bench::InferRequest),
    /// Training and inference images/s of one model, the training step split into forward,
    /// backward and optimizer GPU time.
    Step {
        #[arg(long, value_enum)]
        model: ModelKind,
        /// Batch sizes to measure (the study's is 64).
        #[arg(long, value_delimiter = ',', default_values_t = [64, 128, 256])]
        #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
        batch: Vec<usize>,
        /// Timed steps per batch size (default: 20 on a GPU, 2 on a software adapter).
        #[arg(long)]
        #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
        steps: Option<usize>,
        /// Use the study's cnn even on a software adapter, where it is otherwise scaled down.
        #[arg(long)]
        full: bool,
        /// Print JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_sentence(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: a cause whose text the line already
/// holds is left out (some error types, such as wgpu's, both print their cause and return it
/// as their `source()`).
fn one_sentence(error: &anyhow::Error) -> String {
    let mut sentence = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if sentence.contains(&text) {
            continue;
        }
        if !sentence.is_empty() {
            sentence.push_str(": ");
        }
        sentence.push_str(&text);
    }
    sentence
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut options = GpuOptions::from_env()?;
    options.backend = cli.backend.or(options.backend);
    options.adapter = cli.adapter.or(options.adapter);
    options.autotune = !cli.no_autotune;
    options.tune_budget = Some(std::time::Duration::from_secs_f64(cli.tune_budget));
    match cli.command {
        Command::Report { runs, out, json } => cli::report::report(&runs, &out, json)?,
        Command::Info { json } => {
            let ctx = open_gpu(&options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(ctx.summary())?);
            } else {
                print!("{}", ctx.summary());
            }
        }
        Command::Train(args) => {
            let recipe = args.recipe()?;
            let mut settings = args.settings(&recipe)?;
            let ctx = open_gpu(&options)?;
            let dry_run = cli::dry_run::DryRun {
                model: &settings.model,
                architecture: &settings.architecture,
                batch: settings.epoch.batch_size,
                optimizer: &settings.optimizer,
            };
            if args.dry_run {
                return cli::dry_run::dry_run(ctx.summary(), &dry_run);
            }
            cli::dry_run::refuse_misfit(ctx.summary(), &dry_run)?;
            let _locks = cli::train::lock_results(&args.results, &[settings.model.name()])?;
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let input = settings.model.input(&settings.architecture);
            let asked = args.load_size.or(recipe.load_size);
            let splits = cli::train::DataSource {
                path: args.data.data,
                synthetic_train: args.data.synthetic_train,
                seed: args.seed,
                load_size: cli::train::load_size(&settings.model, &input, asked)?,
                spec: input,
                classes: settings.model.classes(&settings.architecture)?,
                val_split: args.data.val_split.or(recipe.val_split),
            }
            .load()?;
            if let Some(tta) = recipe.tta {
                eprintln!(
                    "recipe {}: evaluate with `fer eval --tta {tta}`",
                    args.recipe
                );
            }
            settings.checkpointing = Some(cli::train::checkpointing(
                &args.results.join(settings.model.name()),
                args.resume.as_ref(),
                args.checkpoint_every,
            )?);
            let trained = cli::train::train(&ctx, &splits, &settings, &args.results, &command)?;
            if trained.interrupted {
                drop(_locks);
                std::process::exit(130);
            }
        }
        Command::Demo {
            models,
            epochs,
            seed,
            results,
        } => {
            let names: Vec<_> = models.kinds().into_iter().map(ModelKind::name).collect();
            let _locks = cli::train::lock_results(&results, &names)?;
            let ctx = open_gpu(&options)?;
            cli::train::demo(&ctx, models, seed, epochs, &results)?;
        }
        Command::Eval(args) => {
            let model = args.model.named()?;
            let ctx = open_gpu(&options)?;
            let architecture = args.architecture.architecture()?;
            cli::train::eval(
                &ctx,
                &cli::train::EvalRequest {
                    model: model.as_ref(),
                    architecture: &architecture,
                    checkpoint: &args.checkpoint,
                    data: args.data.data.as_deref(),
                    synthetic_train: args.data.synthetic_train,
                    seed: args.seed,
                    split: args.split.into(),
                    batch_size: args.batch_size,
                    predictions: args.predictions.as_deref(),
                    val_split: args.data.val_split,
                    tta: args.tta,
                },
            )?;
        }
        Command::Export(args) => cli::export::export(
            args.model.named()?.as_ref(),
            &args.architecture.architecture()?,
            &args.checkpoint,
            &args.onnx,
        )?,
        Command::Predict(args) => {
            let model = args.model.named()?;
            let architecture = args.architecture.architecture()?;
            let ctx = open_gpu(&options)?;
            cli::predict::predict(&ctx, model.as_ref(), &architecture, &args.request)?;
        }
        Command::Live(args) => {
            let model = args.model.named()?;
            let architecture = args.architecture.architecture()?;
            let ctx = open_gpu(&options)?;
            cli::live::live(&ctx, model.as_ref(), &architecture, &args.request)?;
        }
        Command::Recipes { show, model } => match show {
            Some(name) => print!("{}", cli::recipes::show(&name, &model.into())?),
            None => print!("{}", cli::recipes::list()),
        },
        Command::Models { show, batch, json } => {
            if let Some(kind) = show {
                let spec = spec(kind, &Architecture::default())
                    .ok_or_else(|| anyhow::anyhow!("{} has no graph to show", kind.name()))?;
                print!("{}", spec.to_json());
                return Ok(());
            }
            let summaries = cli::models::built_in()
                .iter()
                .map(|spec| cli::models::summarize(spec, batch, cli::models::ADAM_STATES, None))
                .collect::<Result<Vec<_>, _>>()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summaries)?);
            } else {
                print!("{}", cli::models::table(&summaries));
            }
        }
        Command::Profile(args) => {
            let ctx = open_gpu(&options)?;
            cli::profile::profile(
                &ctx,
                &cli::profile::ProfileRequest {
                    model: args.model,
                    batch: args.batch,
                    warmup: args.warmup,
                    steps: args.steps,
                    full: args.full,
                    seed: args.seed,
                    json: args.json,
                    trace: args.trace,
                    augment: args.augment.unwrap_or_default(),
                    pass: if args.inference {
                        Pass::Inference
                    } else {
                        Pass::Training
                    },
                },
            )?;
        }
        Command::Bench(BenchCommand::Matmul {
            sizes,
            variants,
            no_model_shapes,
            seconds,
            json,
        }) => {
            let ctx = open_gpu(&options)?;
            // A square matrix must fit one storage binding (and the host, for the CPU twin).
            let binding = ctx.summary().max_storage_binding_bytes;
            let largest = ((binding / 4) as f64).sqrt() as usize;
            if let Some(size) = sizes.iter().find(|&&size| size > largest) {
                anyhow::bail!(
                    "--sizes {size}: a {size}×{size} matrix is {:.2} MiB, over this adapter's {} \
                     MiB storage binding; the largest square it binds is {largest}",
                    (*size as f64).powi(2) * 4.0 / (1u64 << 20) as f64,
                    binding >> 20
                );
            }
            let mut cases: Vec<_> = sizes.into_iter().map(bench::matmul::Case::square).collect();
            if !no_model_shapes {
                cases.extend(bench::matmul::Case::model_shapes());
            }
            let options = bench::matmul::Options {
                cases,
                variants,
                seconds_per_case: seconds,
            };
            if !json {
                println!("{} ({})", ctx.summary().name, ctx.summary().backend);
                println!("{}", bench::matmul::TABLE_HEADER);
            }
            let report = bench::matmul::run(&ctx, &options, |m| {
                if !json {
                    println!("{}", bench::matmul::table_row(m));
                }
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.timing == TimingSource::WallClock {
                println!("{}", timing_note(report.timing));
            } else {
                println!(
                    "(GPU time from timestamp queries; CPU twin: f64 reference loops, one thread)"
                );
            }
        }
        Command::Bench(BenchCommand::Peak {
            buffer_mib,
            fma_workgroups,
            runs,
            json,
        }) => {
            let ctx = open_gpu(&options)?;
            let defaults = bench::peak::PeakSizes::for_adapter(ctx.summary());
            let sizes = bench::peak::PeakSizes {
                buffer_bytes: buffer_mib.map_or(defaults.buffer_bytes, |mib| {
                    (mib as u64).saturating_mul(1 << 20)
                }),
                fma_workgroups: fma_workgroups.unwrap_or(defaults.fma_workgroups),
                runs: runs.unwrap_or(defaults.runs),
                ..defaults
            };
            let report = bench::peak::run(&ctx, &sizes)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{} ({})", ctx.summary().name, ctx.summary().backend);
                println!("{}", bench::peak::TABLE_HEADER);
                for measurement in &report.measurements {
                    println!("{}", bench::peak::table_row(measurement));
                }
                println!("{}", timing_note(report.peak.timing));
            }
        }
        Command::Bench(BenchCommand::Infer(request)) => {
            cli::bench::bench_infer(&open_gpu(&options)?, &request)?;
        }
        Command::Bench(BenchCommand::Step {
            model,
            batch,
            steps,
            full,
            json,
        }) => {
            let ctx = open_gpu(&options)?;
            let options = bench::step::Options {
                model,
                batches: batch,
                steps,
                full,
            };
            // The header waits for the first row, so a bad option prints only its error.
            let mut rows = 0;
            let report = bench::step::run(&ctx, &options, |m| {
                if json {
                    return;
                }
                if rows == 0 {
                    println!(
                        "{} on {} ({})",
                        model.name(),
                        ctx.summary().name,
                        ctx.summary().backend
                    );
                    println!("{}", bench::step::TABLE_HEADER);
                }
                rows += 1;
                println!("{}", bench::step::table_row(m));
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "(step and infer: wall clock of one submit + wait; phases: {})",
                    match report.timing {
                        TimingSource::Timestamps => "GPU time from timestamp queries",
                        TimingSource::WallClock =>
                            "no timestamp queries on this adapter, each dispatch timed alone by the wall clock",
                    }
                );
                if let Some(note) = &report.scaled {
                    println!("({note})");
                }
            }
        }
    }
    Ok(())
}

/// Opens the adapter the options choose, and says so once if it is a software one.
fn open_gpu(options: &GpuOptions) -> anyhow::Result<GpuContext> {
    let ctx = GpuContext::new(options)?;
    if let Some(notice) = ctx.summary().software_notice() {
        eprintln!("{notice}");
    }
    Ok(ctx)
}

/// Where a bench's kernel times came from, for the line under its table.
fn timing_note(timing: TimingSource) -> &'static str {
    match timing {
        TimingSource::Timestamps => "(GPU time from timestamp queries)",
        TimingSource::WallClock => {
            "(no timestamp queries on this adapter: times are submit-to-finish wall clock)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_sentence;

    #[test]
    fn a_cause_the_sentence_already_holds_is_not_repeated() {
        let reason = std::io::Error::from(std::io::ErrorKind::NotFound);
        let doubled = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context(format!("cannot read model.safetensors: {reason}"));
        assert_eq!(
            one_sentence(&doubled),
            format!("cannot read model.safetensors: {reason}")
        );
        let chained = anyhow::Error::new(reason).context("cannot write predictions.csv");
        assert_eq!(
            one_sentence(&chained),
            "cannot write predictions.csv: entity not found"
        );
    }
}
