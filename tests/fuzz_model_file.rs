//! Model files fuzzed: random mutations of the built-in models' files (settings changed to
//! zero, huge, negative or the wrong type; keys, nodes and inputs removed, repeated or
//! renamed; the text cut or a byte changed) either parse into a model whose graph, shapes,
//! parameter count and FLOPs can be computed, or are refused with a sentence; none panics.

use fer::nn::models::{spec, Architecture, ModelKind};
use fer::nn::spec::ModelSpec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value as Json};

const MODEL_FILE_CASES: u32 = 4096;

/// One change to a model file.
#[derive(Clone, Debug)]
enum Mutation {
    /// A setting of a node (or of the input) gets another value.
    Set {
        at: usize,
        value: Json,
    },
    /// A numeric setting (a size, a stride, a probability) gets another number.
    Number {
        at: usize,
        value: Json,
    },
    /// A setting disappears.
    Remove {
        at: usize,
    },
    /// A node takes another op.
    Op {
        node: usize,
        op: String,
    },
    /// A node reads other nodes.
    Inputs {
        node: usize,
        inputs: Vec<String>,
    },
    /// A node is removed, repeated or moved.
    DropNode(usize),
    RepeatNode(usize),
    Swap(usize, usize),
    /// The text is cut short, or one byte of it changes.
    Truncate(usize),
    Byte(usize, u8),
}

fn number() -> impl Strategy<Value = Json> {
    prop_oneof![
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(2),
            Just(3),
            Just(7),
            Just(48),
            Just(65_535),
            Just(1 << 32),
            Just(u64::MAX)
        ]
        .prop_map(|n| json!(n)),
        (0u64..600).prop_map(|n| json!(n)),
        prop_oneof![Just(-1.0), Just(0.5), Just(1.0), Just(1e300), Just(-0.0)]
            .prop_map(|x| json!(x)),
    ]
}

fn value() -> impl Strategy<Value = Json> {
    prop_oneof![
        number(),
        prop_oneof![
            Just(Json::Null),
            Just(json!(true)),
            Just(json!("relu")),
            Just(json!([])),
            Just(json!({})),
            Just(json!([0.5, 0.5, 0.5])),
        ],
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let op = prop_oneof![
        Just("linear"),
        Just("conv2d"),
        Just("conv_transpose2d"),
        Just("batch_norm"),
        Just("relu"),
        Just("dropout"),
        Just("max_pool2d"),
        Just("avg_pool2d"),
        Just("global_avg_pool"),
        Just("flatten"),
        Just("sigmoid"),
        Just("add"),
        Just("concat"),
        Just("softmax"),
    ];
    let name = prop_oneof![
        Just("input".to_string()),
        Just("fc".to_string()),
        "[a-z0-9.]{1,6}"
    ];
    prop_oneof![
        2 => (any::<usize>(), value()).prop_map(|(at, value)| Mutation::Set { at, value }),
        4 => (any::<usize>(), number()).prop_map(|(at, value)| Mutation::Number { at, value }),
        1 => any::<usize>().prop_map(|at| Mutation::Remove { at }),
        1 => (any::<usize>(), op).prop_map(|(node, op)| Mutation::Op { node, op: op.into() }),
        1 => (any::<usize>(), prop::collection::vec(name, 0..3))
            .prop_map(|(node, inputs)| Mutation::Inputs { node, inputs }),
        1 => any::<usize>().prop_map(Mutation::DropNode),
        1 => any::<usize>().prop_map(Mutation::RepeatNode),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Byte(at, byte)),
    ]
}

/// The object a setting sits in: the input's, or node `i`'s.
fn object(file: &mut Json, node: Option<usize>) -> Option<&mut serde_json::Map<String, Json>> {
    match node {
        None => file.get_mut("input")?.as_object_mut(),
        Some(i) => file.get_mut("nodes")?.get_mut(i)?.as_object_mut(),
    }
}

/// Every setting a `Set` or `Remove` may change: the input's fields and each node's; only
/// those holding a number where `numeric`.
fn settings(file: &mut Json, numeric: bool) -> Vec<(Option<usize>, String)> {
    let nodes = file["nodes"].as_array().map_or(0, Vec::len);
    std::iter::once(None)
        .chain((0..nodes).map(Some))
        .flat_map(|node| {
            let keys: Vec<String> = object(file, node)
                .map(|o| {
                    o.iter()
                        .filter(|(_, value)| !numeric || value.is_number())
                        .map(|(key, _)| key.clone())
                        .collect()
                })
                .unwrap_or_default();
            keys.into_iter().map(move |key| (node, key))
        })
        .collect()
}

/// The nodes, where they are still a list of at least one, and the index `at` picks.
fn pick(file: &mut Json, at: usize) -> Option<(&mut Vec<Json>, usize)> {
    let nodes = file.get_mut("nodes")?.as_array_mut()?;
    let len = nodes.len();
    (len > 0).then_some((nodes, at % len.max(1)))
}

/// Applies `mutations` to the file's JSON and then to its text.
fn mutate(file: &Json, mutations: &[Mutation]) -> String {
    let mut file = file.clone();
    let mut text_changes = Vec::new();
    for mutation in mutations {
        match mutation {
            Mutation::Set { at, value } | Mutation::Number { at, value } => {
                let numeric = matches!(mutation, Mutation::Number { .. });
                let all = settings(&mut file, numeric);
                if let Some((node, key)) = all.get(at % all.len().max(1)) {
                    if let Some(object) = object(&mut file, *node) {
                        object.insert(key.clone(), value.clone());
                    }
                }
            }
            Mutation::Remove { at } => {
                let all = settings(&mut file, false);
                if let Some((node, key)) = all.get(at % all.len().max(1)) {
                    if let Some(object) = object(&mut file, *node) {
                        object.remove(key.as_str());
                    }
                }
            }
            Mutation::Op { node, op } => {
                if let Some((nodes, i)) = pick(&mut file, *node) {
                    nodes[i]["op"] = json!(op);
                }
            }
            Mutation::Inputs { node, inputs } => {
                if let Some((nodes, i)) = pick(&mut file, *node) {
                    nodes[i]["inputs"] = json!(inputs);
                }
            }
            Mutation::DropNode(node) => {
                if let Some((nodes, i)) = pick(&mut file, *node) {
                    nodes.remove(i);
                }
            }
            Mutation::RepeatNode(node) => {
                if let Some((nodes, i)) = pick(&mut file, *node) {
                    let copy = nodes[i].clone();
                    nodes.insert(i, copy);
                }
            }
            Mutation::Swap(a, b) => {
                if let Some((nodes, i)) = pick(&mut file, *a) {
                    let j = b % nodes.len();
                    nodes.swap(i, j);
                }
            }
            Mutation::Truncate(_) | Mutation::Byte(..) => text_changes.push(mutation),
        }
    }
    let mut bytes = serde_json::to_string_pretty(&file).unwrap().into_bytes();
    for change in text_changes {
        match *change {
            Mutation::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
            Mutation::Byte(at, byte) if !bytes.is_empty() => {
                let len = bytes.len();
                bytes[at % len] = byte;
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Any mutation of a built-in model's file parses into a model fer can size (its graph,
/// shapes at a batch, parameters and FLOPs, and the same file again when written out), or is
/// refused with a one-line reason; none panics.
#[test]
fn every_mutated_model_file_parses_into_a_sized_model_or_is_refused() {
    let files: Vec<Json> = ModelKind::ALL
        .iter()
        .filter_map(|&kind| spec(kind, &Architecture::default()))
        .map(|spec| serde_json::from_str(&spec.to_json()).unwrap())
        .collect();
    let case = (0..files.len(), prop::collection::vec(mutation(), 1..4));
    let parsed = std::cell::Cell::new(0);
    TestRunner::new(Config {
        cases: MODEL_FILE_CASES,
        failure_persistence: None,
        ..Config::default()
    })
    .run(&case, |(file, mutations)| {
        let text = mutate(&files[file], &mutations);
        match ModelSpec::parse(&text) {
            Ok(spec) => {
                parsed.set(parsed.get() + 1);
                let graph = spec.graph().expect("a parsed file has a graph");
                let input = spec.input.shape();
                // Sizing may refuse (a shape too large to count), but never panics.
                let _ = graph.shapes(&input, 64);
                let _ = graph.flops_per_sample(&input);
                let _ = graph.parameter_count();
                let again = ModelSpec::parse(&spec.to_json());
                prop_assert!(again.as_ref().ok() == Some(&spec), "{:?}", again.err());
            }
            Err(error) => {
                let sentence = error.to_string();
                prop_assert!(!sentence.is_empty());
            }
        }
        Ok(())
    })
    .unwrap();
    println!(
        "{MODEL_FILE_CASES} mutated model files ({} parsed): none panicked",
        parsed.get()
    );
}
