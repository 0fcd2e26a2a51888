//! `fer predict`: the faces in photos, each classified by a checkpoint.
//!
//! Each photo is decoded, its faces found (or, with `--no-detect`, the photo taken as one face),
//! each face cropped with a margin and brought to the model's input spec as training brought its
//! images; then all faces of all photos are classified in GPU batches.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use image::DynamicImage;
use serde::Serialize;

use fer::data::open_image;
use fer::gpu::GpuContext;
use fer::infer::annotate::{annotate, Label};
use fer::infer::faces::{FaceBox, FaceDetector, DEFAULT_MARGIN, PREDICT_MIN_FACE};
use fer::infer::Classifier;
use fer::nn::models::{Architecture, ModelChoice};
use fer::train::session::{argmax, progress_bar};

use super::options;
use super::train::csv_field;

#[derive(clap::Args)]
pub struct PredictRequest {
    /// A trained model: the model.safetensors `fer train` writes.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Photos, or folders of them (searched recursively; files that are not images are skipped).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Take each image as one face, already cropped (FER2013 style), instead of finding faces.
    #[arg(long)]
    pub no_detect: bool,
    /// Grow each found face's box by this share of its size on every side before cropping.
    #[arg(long, default_value_t = DEFAULT_MARGIN)]
    #[arg(value_parser = options::fraction::<f32>, allow_hyphen_values = true)]
    pub margin: f32,
    /// The smallest face to look for, in pixels (at least 40, the detector's window). Larger
    /// is faster: the image is searched at 40/min-face of its size.
    #[arg(long, default_value_t = PREDICT_MIN_FACE)]
    #[arg(value_parser = options::min_face, allow_hyphen_values = true)]
    pub min_face: u32,
    /// Write each image with its faces' boxes, labels and probability bars to this folder (PNG).
    #[arg(long)]
    pub annotate: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    pub batch_size: usize,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV instead of a table.
    #[arg(long)]
    pub csv: bool,
}

/// One face and what the model made of it.
#[derive(Serialize)]
struct Face {
    #[serde(rename = "box")]
    face: FaceBox,
    class: String,
    probability: f32,
    top3: Vec<Guess>,
    /// One per class, in the checkpoint's class order.
    probabilities: Vec<f32>,
}

#[derive(Serialize)]
struct Guess {
    class: String,
    probability: f32,
}

/// One photo and its faces (none when none was found).
#[derive(Serialize)]
struct Photo {
    file: PathBuf,
    faces: Vec<Face>,
}

pub fn predict(
    ctx: &GpuContext,
    model: Option<&ModelChoice>,
    architecture: &Architecture,
    request: &PredictRequest,
) -> anyhow::Result<()> {
    // Made first, so a folder that cannot be made is said before the work, not after.
    if let Some(folder) = &request.annotate {
        create_folder(folder)?;
    }
    let classifier = Classifier::open(ctx, &request.checkpoint, model, architecture)?;
    let description = &classifier.description;
    if !classifier.self_described {
        eprintln!(
            "checkpoint {} names no classes; assuming {}",
            request.checkpoint.display(),
            description.classes.join(", ")
        );
    }
    let files = image_files(&request.inputs)?;
    let mut detector = match request.no_detect {
        true => None,
        false => Some(
            FaceDetector::new(request.min_face)
                .context("the embedded face detector model is damaged")?,
        ),
    };

    let progress = progress_bar(true, files.len(), "reading");
    let mut boxes: Vec<(PathBuf, Vec<FaceBox>)> = Vec::new();
    let mut crops = Vec::new();
    let mut skipped = Vec::new();
    for file in &files {
        progress.inc(1);
        let image = match open_image(&file.path) {
            Ok(image) => image,
            Err(reason) if file.in_folder => {
                skipped.push(format!("{}: {reason}", file.path.display()));
                continue;
            }
            Err(reason) => bail!(
                "{} is not an image fer reads: {reason}",
                file.path.display()
            ),
        };
        let faces: Vec<FaceBox> = match detector.as_mut() {
            Some(detector) => detector.detect(&image),
            // An empty image (0 pixels wide or high) has no face to classify.
            None => [FaceBox::whole(&image)]
                .into_iter()
                .filter(|face| face.width > 0 && face.height > 0)
                .collect(),
        };
        // With --no-detect the face is the whole image, which a margin cannot grow.
        for face in &faces {
            let grown = face.with_margin(request.margin, image.width(), image.height());
            crops.extend(classifier.face_input(grown.crop(&image)));
        }
        boxes.push((file.path.clone(), faces));
    }
    progress.finish_and_clear();
    if boxes.is_empty() {
        bail!(
            "none of the {} files given is an image fer reads, e.g. {}",
            files.len(),
            skipped.first().map_or("", String::as_str)
        );
    }
    if !skipped.is_empty() {
        eprintln!(
            "skipped {} files that are not images, e.g. {}",
            skipped.len(),
            skipped[..skipped.len().min(3)].join("; ")
        );
    }

    let mut probabilities = classifier
        .probabilities(ctx, crops, request.batch_size)?
        .into_iter();
    let classes = &description.classes;
    let photos: Vec<Photo> = boxes
        .into_iter()
        .map(|(file, faces)| Photo {
            file,
            faces: faces
                .into_iter()
                .zip(probabilities.by_ref())
                .map(|(face, row)| classified(face, row, classes))
                .collect(),
        })
        .collect();

    if request.json {
        let json = serde_json::json!({
            "checkpoint": request.checkpoint,
            "model": description.model.name(),
            "classes": classes,
            "images": photos,
            "skipped": skipped,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else if request.csv {
        print!("{}", csv(&photos, classes));
    } else {
        print!("{}", table(&photos));
    }
    if request.json || request.csv {
        for photo in photos.iter().filter(|photo| photo.faces.is_empty()) {
            eprintln!("{}: no face found", photo.file.display());
        }
    }
    if let Some(folder) = &request.annotate {
        write_annotated(&photos, folder)?;
    }
    Ok(())
}

/// A face with its probabilities, its class and the three likeliest.
fn classified(face: FaceBox, probabilities: Vec<f32>, classes: &[String]) -> Face {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    let best = argmax(&probabilities);
    Face {
        face,
        class: classes[best].clone(),
        probability: probabilities[best],
        top3: order
            .iter()
            .take(3)
            .map(|&c| Guess {
                class: classes[c].clone(),
                probability: probabilities[c],
            })
            .collect(),
        probabilities,
    }
}

/// A file to read, and whether it was found in a folder (where a file that is not an image is
/// skipped, not an error).
struct ImageFile {
    path: PathBuf,
    in_folder: bool,
}

/// The files `inputs` name: files as given, folders searched recursively in name order (names
/// starting with a dot left out).
fn image_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<ImageFile>> {
    let mut files = Vec::new();
    for input in inputs {
        let metadata =
            std::fs::metadata(input).with_context(|| format!("cannot read {}", input.display()))?;
        if !metadata.is_dir() {
            files.push(ImageFile {
                path: input.clone(),
                in_folder: false,
            });
            continue;
        }
        let before = files.len();
        walk(input, &mut files)?;
        if files.len() == before {
            bail!("folder {} holds no files", input.display());
        }
    }
    Ok(files)
}

fn walk(folder: &Path, files: &mut Vec<ImageFile>) -> anyhow::Result<()> {
    let read =
        |error| anyhow::Error::new(error).context(format!("cannot read {}", folder.display()));
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(read)? {
        let entry = entry.map_err(read)?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            entries.push(entry.path());
        }
    }
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(ImageFile {
                path,
                in_folder: true,
            });
        }
    }
    Ok(())
}

/// Per face: file, box, class, probability and the top three; an image without a face says so.
fn table(photos: &[Photo]) -> String {
    let width = photos
        .iter()
        .map(|photo| photo.file.display().to_string().chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut text = format!(
        "{:<width$}  {:<19}  {:<10}  {:>5}  top 3\n",
        "file", "box (x,y w×h)", "class", "p"
    );
    for photo in photos {
        let file = photo.file.display().to_string();
        if photo.faces.is_empty() {
            let _ = writeln!(text, "{file:<width$}  no face found");
        }
        for face in &photo.faces {
            let b = face.face;
            let top3: Vec<String> = face
                .top3
                .iter()
                .map(|guess| format!("{} {:.3}", guess.class, guess.probability))
                .collect();
            let _ = writeln!(
                text,
                "{file:<width$}  {:<19}  {:<10}  {:>5.3}  {}",
                format!("{},{} {}×{}", b.x, b.y, b.width, b.height),
                face.class,
                face.probability,
                top3.join(", ")
            );
        }
    }
    text
}

/// One row per face (an image without one gets a row with the face columns empty), every
/// class's probability in its own column.
fn csv(photos: &[Photo], classes: &[String]) -> String {
    let columns: Vec<String> = classes.iter().map(|c| format!("p_{c}")).collect();
    let mut text = format!(
        "file,x,y,width,height,class,probability,top3,{}\n",
        columns.join(",")
    );
    for photo in photos {
        let file = csv_field(&photo.file.display().to_string());
        if photo.faces.is_empty() {
            let _ = writeln!(text, "{file}{}", ",".repeat(7 + classes.len()));
        }
        for face in &photo.faces {
            let b = face.face;
            let top3: Vec<String> = face
                .top3
                .iter()
                .map(|guess| format!("{}:{:.6}", guess.class, guess.probability))
                .collect();
            let _ = write!(
                text,
                "{file},{},{},{},{},{},{:.6},{}",
                b.x,
                b.y,
                b.width,
                b.height,
                csv_field(&face.class),
                face.probability,
                csv_field(&top3.join(" "))
            );
            for p in &face.probabilities {
                let _ = write!(text, ",{p:.6}");
            }
            text.push('\n');
        }
    }
    text
}

/// Each photo, decoded again, with its labels drawn, as `<folder>/<file stem>.png` (`-2`, `-3`,
/// ... after a name already written).
fn write_annotated(photos: &[Photo], folder: &Path) -> anyhow::Result<()> {
    let mut taken = HashSet::new();
    for photo in photos {
        let image: DynamicImage = open_image(&photo.file)
            .map_err(|reason| anyhow::anyhow!("cannot read {}: {reason}", photo.file.display()))?;
        let labels: Vec<Label> = photo
            .faces
            .iter()
            .map(|face| Label {
                face: face.face,
                class: &face.class,
                probability: face.probability,
            })
            .collect();
        let annotated = annotate(&image, &labels)?;
        let stem = photo
            .file
            .file_stem()
            .map_or("image".into(), |stem| stem.to_string_lossy());
        let name = (1..)
            .map(|n| match n {
                1 => format!("{stem}.png"),
                n => format!("{stem}-{n}.png"),
            })
            .find(|name| taken.insert(name.clone()))
            .unwrap_or_default();
        let path = folder.join(name);
        annotated
            .save(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!(
        "wrote {} annotated images to {}",
        photos.len(),
        folder.display()
    );
    Ok(())
}

/// `folder` and the folders above it, as `mkdir -p` makes them.
pub fn create_folder(folder: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create folder {}", folder.display()))
}
