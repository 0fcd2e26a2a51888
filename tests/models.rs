//! The study's models: layer names, shapes and parameter counts as PyTorch has them.

use fer::gpu::{GpuContext, GpuOptions};
use fer::nn::models::{build, spec, Architecture, ModelChoice, ModelKind};
use fer::nn::spec::ModelSpec;

fn gpu() -> GpuContext {
    GpuContext::new(&GpuOptions::from_env().expect("FER_BACKEND")).expect("a GPU adapter")
}

#[test]
fn cnn_has_the_studys_parameter_count_and_state_dict_names() {
    let ctx = gpu();
    let model = build(&ctx, ModelKind::Cnn, &Architecture::default(), 0)
        .expect("builds")
        .expect("a GPU model");
    assert_eq!(model.params.trainable_count(), 4_344_711);
    let names: Vec<&str> = model.params.iter().map(|p| p.name.as_str()).collect();
    for index in [0, 1, 5, 6, 10, 11, 15, 16, 21, 22, 25, 26, 29] {
        let prefix = format!("network.{index}.");
        assert!(
            names.iter().any(|n| n.starts_with(&prefix)),
            "no {prefix}* in {names:?}"
        );
    }
    assert!(names.contains(&"network.22.running_var"));
    assert_eq!(model.shapes(64).expect("shapes").last(), Some(&vec![64, 7]));
}

#[test]
fn mlp_and_softmax_use_the_studys_names() {
    let ctx = gpu();
    let arch = Architecture::default();
    let mlp = build(&ctx, ModelKind::Mlp, &arch, 0)
        .expect("builds")
        .expect("GPU model");
    let names: Vec<&str> = mlp.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fc1.weight",
            "fc1.bias",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "fc2.weight",
            "fc2.bias",
            "bn2.weight",
            "bn2.bias",
            "bn2.running_mean",
            "bn2.running_var",
            "fc3.weight",
            "fc3.bias"
        ]
    );
    let softmax = build(&ctx, ModelKind::Softmax, &arch, 0)
        .expect("builds")
        .expect("GPU model");
    assert_eq!(softmax.params.trainable_count(), 2304 * 7 + 7);
    assert!(build(&ctx, ModelKind::Baseline, &arch, 0)
        .expect("builds")
        .is_none());
}

#[test]
fn a_batch_too_large_for_the_adapter_is_refused_with_the_layer_named() {
    let ctx = gpu();
    let softmax = build(&ctx, ModelKind::Softmax, &Architecture::default(), 0)
        .expect("builds")
        .expect("a GPU model");
    // 2^26 images of 2304 floats: 576 GiB, beyond any adapter's binding limit.
    let error = softmax.plan(&ctx, 1 << 26).err().expect("refused");
    let text = error.to_string();
    assert!(
        text.contains("`input`") && text.contains("smaller batch size"),
        "{text}"
    );
}

/// Every built-in model prints as a model file that reads back as the same model.
#[test]
fn built_in_models_round_trip_through_model_files() {
    let arch = Architecture::default();
    for kind in ModelKind::ALL {
        let Some(spec) = spec(kind, &arch) else {
            continue;
        };
        let text = spec.to_json();
        let back = ModelSpec::parse(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
        assert_eq!(back, spec, "{}", kind.name());
    }
}

/// A wrong model file is one sentence naming the node and what is wrong.
#[test]
fn a_wrong_model_file_names_the_node_and_the_fault() {
    let file = |nodes: &str| {
        let input = r#"{"channels": 1, "height": 4, "width": 4, "mean": [0.5], "std": [0.5]}"#;
        format!(r#"{{"name": "m", "input": {input}, "nodes": [{nodes}]}}"#)
    };
    let conv = r#"{"name": "conv", "op": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1}"#;
    let cases = [
        (
            format!(r#"{conv}, {{"name": "add", "op": "add", "inputs": ["conv", "nope"]}}"#),
            "node `add`: reads `nope`, which no node before it outputs",
        ),
        (
            format!(r#"{conv}, {{"name": "add", "op": "add", "inputs": ["conv", "input"]}}"#),
            "layer `add` (Add()) cannot take input of shape [1, 2, 4, 4] and [1, 1, 4, 4]",
        ),
        (
            r#"{"name": "x", "op": "convolution"}"#.to_string(),
            "node `x`: unknown variant `convolution`",
        ),
        (
            r#"{"name": "x", "op": "dropout", "p": 0.5, "rate": 2}"#.to_string(),
            "node `x`: unknown field `rate`",
        ),
        (
            format!(r#"{conv}, {{"name": "conv", "op": "relu"}}"#),
            "node `conv`: another node has the same name",
        ),
        (r#"{"op": "relu"}"#.to_string(), "node 0 has no \"name\""),
        (
            format!(r#"{conv}, {{"name": "relu", "op": "relu", "input": ["conv"]}}"#),
            "node `relu`: unknown field `input`",
        ),
        (
            format!(r#"{conv}, {{"name": "input", "op": "relu"}}"#),
            "node `input`: `input` names the image the model reads",
        ),
        (
            conv.to_string(),
            "node `conv`: outputs [1, 2, 4, 4] for one image: a classifier ends in [batch, classes]",
        ),
        (
            r#"{"name": "flat", "op": "flatten"}, {"name": "fc", "op": "linear", "in_features": 16, "out_features": 18446744073709551615}"#
                .to_string(),
            "node `fc`: its output [1, 18446744073709551615] for one image holds more values than fer counts",
        ),
        (
            r#"{"name": "flat", "op": "flatten"}, {"name": "fc", "op": "linear", "in_features": 16, "out_features": 137438953472}, {"name": "out", "op": "linear", "in_features": 137438953472, "out_features": 2}"#
                .to_string(),
            "node `fc`: its tensor `fc.weight` [137438953472, 16] holds more values than fer counts",
        ),
        (
            r#"{"name": "flat", "op": "flatten"}, {"name": "fc", "op": "linear", "in_features": 16, "out_features": 0}"#
                .to_string(),
            "node `fc`: outputs 0 classes: a classifier needs at least two",
        ),
        (
            r#"{"name": "k0", "op": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 0}"#
                .to_string(),
            "layer `k0` (Conv2d(1, 2, kernel_size=(0, 0), stride=(1, 1), padding=(0, 0))) cannot \
             take input of shape [1, 1, 4, 4]: a kernel of size 0 covers no pixel",
        ),
    ];
    let escaping =
        file(r#"{"name": "relu", "op": "relu"}"#).replace(r#""name": "m""#, r#""name": "../m""#);
    let error = ModelSpec::parse(&escaping).expect_err("a name that climbs out");
    assert!(
        error
            .to_string()
            .starts_with(r#""name" "../m" must be a plain name"#),
        "{error}"
    );
    for (nodes, expected) in cases {
        let error = ModelSpec::parse(&file(&nodes))
            .expect_err(&nodes)
            .to_string();
        assert!(
            error.starts_with(expected),
            "{nodes}\ngave: {error}\nwanted: {expected}"
        );
    }
}

/// Every built-in model against its PyTorch twin's description
/// (`tests/fixtures/model_specs.json`, written by `scripts/model_specs.py`): input, classes,
/// the state_dict's names, shapes and kinds in order (fer writes `num_batches_tracked` when it
/// saves a checkpoint, so the graph has none), the parameter count and the forward FLOPs.
#[test]
fn built_in_models_match_their_pytorch_twins() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/model_specs.json")).expect("the fixture");
    let arch = Architecture::default();
    for kind in ModelKind::ALL {
        let Some(spec) = spec(kind, &arch) else {
            continue;
        };
        let name = kind.name();
        let twin = &fixture["models"][name];
        assert!(twin.is_object(), "{name} has no twin in the fixture");
        let input = spec.input.shape().to_vec();
        assert_eq!(twin["input"], serde_json::json!(input), "{name} input");
        let graph = spec.graph().expect("a built-in model's graph");
        let shapes = graph.shapes(&input, 1).expect("shapes");
        assert_eq!(
            twin["classes"],
            serde_json::json!(shapes.last().expect("an output")[1]),
            "{name} classes"
        );
        let ours: Vec<(String, Vec<usize>, &str)> = graph
            .tensors()
            .into_iter()
            .map(|(tensor, spec)| {
                let kind = if spec.trainable {
                    "trainable"
                } else {
                    "buffer"
                };
                (tensor, spec.shape, kind)
            })
            .collect();
        let theirs: Vec<(String, Vec<usize>, &str)> = twin["state_dict"]
            .as_array()
            .expect("a state_dict list")
            .iter()
            .filter(|entry| {
                !entry["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("num_batches_tracked")
            })
            .map(|entry| {
                let shape = serde_json::from_value(entry["shape"].clone()).expect("a shape");
                let name = entry["name"].as_str().unwrap().to_string();
                (name, shape, entry["kind"].as_str().unwrap())
            })
            .collect();
        assert_eq!(ours, theirs, "{name} state_dict");
        assert_eq!(
            twin["parameters"],
            serde_json::json!(graph.parameter_count()),
            "{name} parameters"
        );
        let flops = graph.flops_per_sample(&input).expect("flops");
        assert_eq!(
            twin["flops"].as_f64(),
            Some(flops),
            "{name} FLOPs per image"
        );
    }
}

/// What each model predicts: keras_cnn its study's six classes, the rest FER2013's seven (the
/// synthetic faces and every data check are drawn for this count).
#[test]
fn each_built_in_names_its_class_count() {
    for kind in ModelKind::ALL {
        let want = if kind == ModelKind::KerasCnn { 6 } else { 7 };
        let classes = ModelChoice::from(kind)
            .classes(&Architecture::default())
            .expect("a built-in's shapes");
        assert_eq!(classes, want, "{}", kind.name());
    }
}

/// The hand count the models issue names.
#[test]
fn keras_cnn_has_the_studys_parameter_count() {
    let spec = spec(ModelKind::KerasCnn, &Architecture::default()).expect("a GPU model");
    assert_eq!(spec.graph().expect("graph").parameter_count(), 1_281_670);
}

fn fer(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(args)
        .output()
        .expect("fer runs");
    assert!(
        output.status.success(),
        "fer {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// `fer models` lists every built-in with its size, and `--show` prints a model file that
/// reads back as the built-in.
#[test]
fn fer_models_lists_and_shows_the_built_ins() {
    let list: serde_json::Value = serde_json::from_str(&fer(&["models", "--json"])).expect("JSON");
    let keras = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|m| m["name"] == "keras_cnn")
        .expect("keras_cnn is listed");
    assert_eq!(keras["parameters"], 1_281_670);
    assert_eq!(keras["input"], serde_json::json!([3, 222, 222]));
    assert_eq!(keras["classes"], 6);
    let shown = ModelSpec::parse(&fer(&["models", "--show", "resnet"])).expect("a model file");
    assert_eq!(
        Some(shown),
        spec(ModelKind::Resnet, &Architecture::default())
    );
}

/// A model file trains and evaluates like a built-in model: `fer models --show mlp`, renamed,
/// trains into `results/<its name>/`, and `fer eval --model-file` reads its checkpoint back
/// to the same validation accuracy. A broken file is one sentence naming the file and node.
#[test]
fn a_model_file_trains_and_evaluates() {
    let dir = std::env::temp_dir().join(format!("fer-model-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let file = dir.join("tiny.json");
    let shown =
        fer(&["models", "--show", "mlp"]).replace("\"name\": \"mlp\"", "\"name\": \"tiny\"");
    // Settings as a person would write them: the f32 0.3 as 0.3, not 0.30000001192092896.
    assert!(shown.contains(r#""op":"dropout","p":0.3}"#), "{shown}");
    std::fs::write(&file, shown).expect("write the model file");
    let (file, results) = (file.to_str().unwrap(), dir.join("results"));
    let common = ["--synthetic-train", "64", "--seed", "3"];
    let trained = fer(&[
        &[
            "train",
            "--model-file",
            file,
            "--epochs",
            "1",
            "--quiet",
            "--results",
        ],
        &[results.to_str().unwrap()][..],
        &common,
    ]
    .concat());
    let checkpoint = results.join("tiny/model.safetensors");
    assert!(checkpoint.exists(), "{trained}");
    let evaluated = fer(&[
        &[
            "eval",
            "--model-file",
            file,
            "--split",
            "val",
            "--checkpoint",
        ],
        &[checkpoint.to_str().unwrap()][..],
        &common,
    ]
    .concat());
    let accuracy = |text: &str, prefix: &str| {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .expect(prefix)
            .to_string();
        line.split_whitespace()
            .nth(1)
            .expect("a number")
            .to_string()
    };
    assert_eq!(
        accuracy(&trained, "accuracy:"),
        accuracy(&evaluated, "accuracy:")
    );
    // The same name over other nodes is said so, not as two models of one name.
    let other = std::fs::read_to_string(file)
        .unwrap()
        .replace(r#""p":0.3"#, r#""p":0.4"#);
    std::fs::write(dir.join("other.json"), other).expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(["eval", "--split", "val", "--model-file"])
        .arg(dir.join("other.json"))
        .arg("--checkpoint")
        .arg(&checkpoint)
        .args(common)
        .output()
        .expect("fer runs");
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && error
                .contains("holds a model named `tiny` whose nodes differ from the model file's"),
        "{error}"
    );
    std::fs::write(dir.join("bad.json"), shown_with_bad_input()).expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fer"))
        .args([
            "train",
            "--model-file",
            dir.join("bad.json").to_str().unwrap(),
        ])
        .output()
        .expect("fer runs");
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        error.contains("bad.json") && error.contains("node `fc1`: reads `nowhere`"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn shown_with_bad_input() -> String {
    fer(&["models", "--show", "mlp"]).replace(
        "{\"name\":\"fc1\",",
        "{\"name\":\"fc1\",\"inputs\":[\"nowhere\"],",
    )
}
