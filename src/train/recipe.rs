//! Recipes: how to train, as a TOML file a person can read, copy and edit. Every key is
//! optional; a recipe is applied over the model's study defaults ([`TrainSettings::study`]),
//! and the command line's explicit flags are applied over the recipe. Two are built in: `study`
//! (each built-in model's recipe from its source study, `MODELS.md`) and `best` (fer's own).

use clap::ValueEnum;
use serde::Deserialize;

use crate::infer::tta::TtaChoice;
use crate::nn::models::{ModelChoice, ModelKind};

use super::augmentation::Augmentation;
use super::early_stopping::EarlyStopping;
use super::loss::{ClassWeights, LossKind};
use super::optimizer::{L2Penalty, OptimizerKind};
use super::option_text::accepted_in_f32;
use super::schedule::{OptimizerSwitch, Schedule};
use super::session::TrainSettings;

/// The built-in recipes, as `--recipe` names them, each with one line on what it is.
pub const BUILT_IN: [(&str, &str); 2] = [
    (
        "study",
        "each model's recipe from its source study (the default; MODELS.md)",
    ),
    (
        "best",
        "fer's own, after the best single FER2013 networks: SGD Nesterov, plateau schedule, \
         crop/shift/flip/rotate/erase augmentation",
    ),
];

/// A recipe's values, parsed and checked; none means "the model's default".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recipe {
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub optimizer: Option<OptimizerKind>,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub nesterov: Option<bool>,
    pub weight_decay: Option<f64>,
    pub l2: Option<Vec<L2Penalty>>,
    pub label_smoothing: Option<f32>,
    pub loss: Option<LossKind>,
    pub class_weights: Option<ClassWeights>,
    pub augment: Option<Augmentation>,
    pub schedule: Option<Schedule>,
    pub switch_to_sgd: Option<OptimizerSwitch>,
    pub early_stopping: Option<EarlyStopping>,
    /// The fraction of train carved out as val when the dataset has no val split.
    pub val_split: Option<f64>,
    /// Read images at this side and train on random crops of the model's input size
    /// (`fer train --load-size`).
    pub load_size: Option<usize>,
    /// How the recipe's models are meant to be evaluated (`fer eval --tta`).
    pub tta: Option<TtaChoice>,
}

/// A recipe file as written: the same keys, the composite values in the flags' syntax.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeText {
    epochs: Option<usize>,
    batch_size: Option<usize>,
    optimizer: Option<String>,
    lr: Option<f64>,
    momentum: Option<f64>,
    nesterov: Option<bool>,
    weight_decay: Option<f64>,
    l2: Option<Vec<String>>,
    label_smoothing: Option<f32>,
    loss: Option<String>,
    class_weights: Option<String>,
    augment: Option<String>,
    schedule: Option<String>,
    switch_to_sgd: Option<String>,
    early_stopping: Option<String>,
    val_split: Option<f64>,
    load_size: Option<usize>,
    tta: Option<String>,
}

/// Why a recipe cannot be used: one sentence naming the key (the caller names the file).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecipeError {
    /// Not TOML, an unknown key, or a value of the wrong type (toml's own words).
    #[error("{0}")]
    Syntax(String),
    #[error("key `{key}`: {reason}")]
    Value { key: &'static str, reason: String },
    #[error("there is no built-in recipe `{0}`: use study or best, or a .toml file")]
    Unknown(String),
}

impl Recipe {
    /// Parses a recipe file's text, checking every value as its flag would.
    pub fn parse(text: &str) -> Result<Recipe, RecipeError> {
        let raw: RecipeText = toml::from_str(text).map_err(|error| syntax(text, &error))?;
        fn each<T>(
            key: &'static str,
            value: Option<String>,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, RecipeError> {
            value
                .map(|text| parse(&text))
                .transpose()
                .map_err(|reason| RecipeError::Value {
                    key,
                    reason: one_line(&reason),
                })
        }
        fn within<T: Copy + Into<f64>>(
            key: &'static str,
            value: Option<T>,
            accept: impl Fn(f64) -> bool,
            what: &str,
        ) -> Result<Option<T>, RecipeError> {
            match value {
                Some(v) if !accepted_in_f32(v.into(), &accept) => Err(RecipeError::Value {
                    key,
                    reason: format!("{} is not {what} (in f32's range)", v.into()),
                }),
                _ => Ok(value),
            }
        }
        let positive_count = |key, value: Option<usize>| match value {
            Some(0) => Err(RecipeError::Value {
                key,
                reason: "must be at least 1".into(),
            }),
            _ => Ok(value),
        };
        let fraction = |x: f64| (0.0..1.0).contains(&x);
        const FRACTION: &str = "a number from 0 up to (not including) 1";
        let l2 = raw
            .l2
            .map(|penalties| {
                penalties
                    .iter()
                    .map(|text| text.parse())
                    .collect::<Result<Vec<L2Penalty>, _>>()
            })
            .transpose()
            .map_err(|reason| RecipeError::Value {
                key: "l2",
                reason: one_line(&reason),
            })?;
        Ok(Recipe {
            epochs: positive_count("epochs", raw.epochs)?,
            batch_size: positive_count("batch_size", raw.batch_size)?,
            optimizer: each("optimizer", raw.optimizer, |text| {
                OptimizerKind::from_str(text, false)
                    .map_err(|_| format!("`{text}` is not an optimizer: use sgd, adam or adamw"))
            })?,
            lr: within("lr", raw.lr, |x| x > 0.0, "a number above 0")?,
            momentum: within("momentum", raw.momentum, fraction, FRACTION)?,
            nesterov: raw.nesterov,
            weight_decay: within(
                "weight_decay",
                raw.weight_decay,
                |x| x >= 0.0,
                "a number of at least 0",
            )?,
            l2,
            label_smoothing: within("label_smoothing", raw.label_smoothing, fraction, FRACTION)?,
            loss: each("loss", raw.loss, str::parse)?,
            class_weights: each("class_weights", raw.class_weights, str::parse)?,
            augment: each("augment", raw.augment, str::parse)?,
            schedule: each("schedule", raw.schedule, Schedule::parse)?,
            switch_to_sgd: each("switch_to_sgd", raw.switch_to_sgd, OptimizerSwitch::parse)?,
            early_stopping: each("early_stopping", raw.early_stopping, EarlyStopping::parse)?,
            val_split: within(
                "val_split",
                raw.val_split,
                |x| x > 0.0 && x < 1.0,
                "a fraction between 0 and 1",
            )?,
            load_size: positive_count("load_size", raw.load_size)?,
            tta: each("tta", raw.tta, str::parse)?,
        })
    }

    /// The text of built-in recipe `name` for `model` (a model file's study recipe is empty:
    /// it trains as the mlp and cnn do).
    pub fn built_in_text(name: &str, model: &ModelChoice) -> Result<&'static str, RecipeError> {
        match (name, model) {
            ("study", ModelChoice::BuiltIn(kind)) => Ok(study_text(*kind)),
            ("study", ModelChoice::File(_)) => Ok(MODEL_FILE_STUDY),
            ("best", _) => Ok(BEST),
            _ => Err(RecipeError::Unknown(name.to_string())),
        }
    }

    /// Sets every value the recipe holds on `settings`.
    pub fn apply(&self, settings: &mut TrainSettings) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *target = value.clone();
            }
        }
        fn set_some<T: Clone>(target: &mut Option<T>, value: &Option<T>) {
            if value.is_some() {
                target.clone_from(value);
            }
        }
        set(&mut settings.epochs, &self.epochs);
        set(&mut settings.epoch.batch_size, &self.batch_size);
        set(&mut settings.optimizer.kind, &self.optimizer);
        set(&mut settings.optimizer.lr, &self.lr);
        set(&mut settings.optimizer.momentum, &self.momentum);
        set(&mut settings.optimizer.nesterov, &self.nesterov);
        set(&mut settings.optimizer.weight_decay, &self.weight_decay);
        set(&mut settings.l2, &self.l2);
        set(&mut settings.label_smoothing, &self.label_smoothing);
        set(&mut settings.loss, &self.loss);
        set(&mut settings.epoch.augment, &self.augment);
        set_some(&mut settings.class_weights, &self.class_weights);
        set_some(&mut settings.schedule, &self.schedule);
        set_some(&mut settings.switch_to_sgd, &self.switch_to_sgd);
        set_some(&mut settings.early_stopping, &self.early_stopping);
    }
}

/// toml's message, led by the key on the line it points at when the message does not name it
/// (a wrong type says only what it expected).
/// `reason` with its control characters escaped: it quotes the recipe's own strings, and a
/// TOML string may hold a newline (`"c\ntrast"`), which would break the sentence in two.
fn one_line(reason: &str) -> String {
    reason
        .chars()
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            escaped
                .into_iter()
                .flatten()
                .chain((!c.is_control()).then_some(c))
        })
        .collect()
}

fn syntax(text: &str, error: &toml::de::Error) -> RecipeError {
    let message = one_line(error.message().trim());
    let key = error.span().and_then(|span| {
        let line_start = text[..span.start.min(text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = text[line_start..].lines().next()?;
        let (key, _) = line.split_once('=')?;
        let bare_key = |key: &str| {
            let key_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            !key.is_empty() && key.chars().all(key_char)
        };
        Some(key.trim()).filter(|key| bare_key(key) && !message.contains(&format!("`{key}`")))
    });
    RecipeError::Syntax(match key {
        Some(key) => format!("key `{key}`: {message}"),
        None => message.to_string(),
    })
}

/// The four-model study's recipe is [`TrainSettings::study`] itself: spelled out here so it can
/// be copied, applying it changes nothing.
const FOUR_MODEL_STUDY: &str = r#"# The four-model study (MODELS.md A): 10 epochs at batch 64, Adam at lr 1e-3,
# no augmentation, plain cross-entropy.
epochs = 10
batch_size = 64
optimizer = "adam"
lr = 0.001
"#;

const SOFTMAX_STUDY: &str = r#"# The four-model study (MODELS.md A): softmax regression by SGD at lr 0.01,
# 10 epochs at batch 64, no augmentation.
epochs = 10
batch_size = 64
optimizer = "sgd"
lr = 0.01
"#;

const BASELINE_STUDY: &str = r#"# The baseline only counts the training classes: it has nothing to tune.
"#;

const MODEL_FILE_STUDY: &str = r#"# A model file trains as the study's mlp and cnn: Adam at lr 1e-3, 10 epochs at
# batch 64.
epochs = 10
batch_size = 64
optimizer = "adam"
lr = 0.001
"#;

/// What the six-architecture study's models share: batch 32, its augmentation, a 75/25 split of
/// the training folder, early stopping with the best weights kept.
macro_rules! six_architecture {
    ($early_stopping:literal) => {
        concat!(
            "batch_size = 32\n",
            "# Flip p=0.5, colour jitter, rotation ±30°, translation ±10%.\n",
            "augment = \"flip,brightness=0.2,contrast=0.2,saturation=0.2,hue=0.1,rotate=30,",
            "shift=0.1\"\n",
            "# The study stopped when neither val loss nor val accuracy improved; fer watches\n",
            "# one value, the loss, and ends with the best epoch's weights.\n",
            "early_stopping = \"",
            $early_stopping,
            "\"\n",
            "# The study carved 25% of its training folder out as val.\n",
            "val_split = 0.25\n",
        )
    };
}

/// The six-architecture study (MODELS.md B), one recipe per model: the shared part is
/// written once and the optimizer, epochs and patience differ.
fn study_text(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Baseline => BASELINE_STUDY,
        ModelKind::Softmax => SOFTMAX_STUDY,
        ModelKind::Mlp | ModelKind::Cnn => FOUR_MODEL_STUDY,
        ModelKind::BasicCnn => concat!(
            "# The six-architecture study's basic_cnn (MODELS.md B1): Adam lr 1e-4, 30 epochs.\n",
            "optimizer = \"adam\"\nlr = 0.0001\nepochs = 30\n",
            six_architecture!("val_loss:patience=10"),
        ),
        ModelKind::Resnet => concat!(
            "# The six-architecture study's resnet (MODELS.md B2): Adam lr 1e-4, 30 epochs.\n",
            "optimizer = \"adam\"\nlr = 0.0001\nepochs = 30\n",
            six_architecture!("val_loss:patience=10"),
        ),
        ModelKind::Googlenet => concat!(
            "# The six-architecture study's googlenet (MODELS.md B3): Adam lr 1e-4, 50 epochs,\n",
            "# patience 5.\n",
            "optimizer = \"adam\"\nlr = 0.0001\nepochs = 50\n",
            six_architecture!("val_loss:patience=5"),
        ),
        ModelKind::Unet => concat!(
            "# The six-architecture study's unet (MODELS.md B4): Adam lr 1e-3, 50 epochs.\n",
            "optimizer = \"adam\"\nlr = 0.001\nepochs = 50\n",
            six_architecture!("val_loss:patience=10"),
        ),
        ModelKind::Newnet => concat!(
            "# The six-architecture study's newnet (MODELS.md B5): SGD lr 1e-3 momentum 0.9,\n",
            "# 50 epochs.\n",
            "optimizer = \"sgd\"\nlr = 0.001\nmomentum = 0.9\nepochs = 50\n",
            six_architecture!("val_loss:patience=10"),
        ),
        ModelKind::Roglenet => concat!(
            "# The six-architecture study's roglenet (MODELS.md B6): SGD lr 1e-3 momentum 0.9,\n",
            "# 50 epochs, cross-entropy weighted per class (angry ... surprise).\n",
            "optimizer = \"sgd\"\nlr = 0.001\nmomentum = 0.9\nepochs = 50\n",
            "class_weights = \"1,1.2,1.2,1.2,1.2,1.2,2\"\n",
            six_architecture!("val_loss:patience=10"),
        ),
        ModelKind::RealtimeCnn => REALTIME_STUDY,
        ModelKind::KerasCnn => KERAS_STUDY,
    }
}

const REALTIME_STUDY: &str = r#"# The real-time CNN study (MODELS.md D): Adam lr 1e-3, class weights inverse to the class
# frequency, L2 1e-4 on the dense kernels, up to 50 epochs.
optimizer = "adam"
lr = 0.001
epochs = 50
class_weights = "balanced"
l2 = ["dense=1e-4"]
# Keras's ImageDataGenerator: rotation ±20°, shifts ±20%, shear 0.2, zoom ±20%, flip, nearest fill.
augment = "rotate=20,shift=0.2,shear=0.2,zoom=0.2,flip,fill=nearest"
# ReduceLROnPlateau: halve the lr after 10 epochs without a better val accuracy, floor 1e-7.
schedule = "plateau:monitor=val_acc,factor=0.5,patience=10,min_lr=1e-7"
# EarlyStopping restoring the best weights (the study gives no patience; 20 outlasts two lr
# reductions).
early_stopping = "val_acc:patience=20"
"#;

const KERAS_STUDY: &str = r#"# The Keras CNN study (MODELS.md C): Adam (Keras defaults, lr 1e-3), 10 epochs at Keras's
# default batch 32; flip, rotation ±10°, zoom ±10%. The study split one folder of class folders
# 70/15/15, as fer does for such a folder.
optimizer = "adam"
lr = 0.001
epochs = 10
batch_size = 32
augment = "flip,rotate=10,zoom=0.1"
"#;

const BEST: &str = r#"# fer's own recipe, after the best single networks on FER2013 (MODELS.md E: a VGG-style net,
# 73.28% PrivateTest after 300 epochs). Meant for the cnn or a VGG-style model file.
epochs = 300
batch_size = 64
# SGD with Nesterov momentum 0.9 at lr 0.01, decoupled weight decay 1e-4.
optimizer = "sgd"
lr = 0.01
momentum = 0.9
nesterov = true
weight_decay = 0.0001
# ReduceLROnPlateau on val accuracy: × 0.75 after 5 epochs without improvement.
schedule = "plateau:monitor=val_acc,factor=0.75,patience=5"
# Random resized crop (80% of the area or more), shift ±20%, flip, rotation ±10°, random
# erasing with p 0.5.
augment = "resized_crop=0.8,shift=0.2,flip,rotate=10,erase=0.5"
# Keep the best epoch's weights; stop when val accuracy stalls through several lr reductions.
early_stopping = "val_acc:patience=30"
# The cnn reads the 48×48 faces whole. The studies' VGG-style nets read 44×44 crops: for a model
# file reading 44×44, add `load_size = 48` (train on random crops of the faces, validate on the
# centre crop) and `tta = "tencrop"` (evaluate with `fer eval --tta tencrop`, ~1% more); a 48×48
# model averages the face and its mirror image.
tta = "flip"
"#;
