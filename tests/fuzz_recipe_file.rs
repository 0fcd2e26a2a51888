//! Recipe files fuzzed: random mutations of the built-in recipes (a value replaced by another
//! type, a number out of range, a composite value's part changed or cut; lines removed,
//! repeated or renamed; the text cut or a character changed) either parse into a recipe that
//! applies to a run's settings, or are refused with one line naming the key; none panics.

use fer::nn::models::ModelKind;
use fer::train::recipe::{Recipe, RecipeError};
use fer::train::session::TrainSettings;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const RECIPE_FILE_CASES: u32 = 4096;

/// One change to a recipe file's text.
#[derive(Clone, Debug)]
enum Mutation {
    /// The value of the `line`th setting becomes `value` (TOML text).
    Value { line: usize, value: String },
    /// One number inside the `line`th setting's value (`rotate=10`, `lr = 0.01`) becomes `number`.
    Number { line: usize, number: String },
    /// The `line`th setting's value loses the part after its `cut`th comma.
    Cut { line: usize, cut: usize },
    /// The `line`th setting disappears.
    Remove { line: usize },
    /// The `line`th setting appears twice.
    Repeat { line: usize },
    /// The `line`th setting's key is renamed.
    Rename { line: usize, key: String },
    /// The text ends at the `at`th character.
    Truncate { at: usize },
    /// The `at`th character becomes `with`.
    Replace { at: usize, with: char },
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1e300".to_string()),
        Just("1e-50".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("18446744073709551616".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("[\"dense=1e-4\", 3]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("\"\"".to_string()),
        (-1e6f64..1e6).prop_map(|x| x.to_string()),
        "[a-z_=:,.0-9@ -]{0,24}".prop_map(|text| format!("\"{text}\"")),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-3".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("1e40".to_string()),
        Just("".to_string()),
        Just("x".to_string()),
        (-1e3f64..1e3).prop_map(|x| format!("{x:.3}")),
        (0u64..100_000).prop_map(|n| n.to_string()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let line = 0usize..32;
    prop_oneof![
        (line.clone(), value()).prop_map(|(line, value)| Mutation::Value { line, value }),
        (line.clone(), number()).prop_map(|(line, number)| Mutation::Number { line, number }),
        (line.clone(), 0usize..6).prop_map(|(line, cut)| Mutation::Cut { line, cut }),
        line.clone().prop_map(|line| Mutation::Remove { line }),
        line.clone().prop_map(|line| Mutation::Repeat { line }),
        (line, "[a-z_]{1,14}").prop_map(|(line, key)| Mutation::Rename { line, key }),
        (0usize..2000).prop_map(|at| Mutation::Truncate { at }),
        (0usize..2000, any::<char>()).prop_map(|(at, with)| Mutation::Replace { at, with }),
    ]
}

/// The built-in recipes: each built-in model's study recipe and `best`.
fn built_in_texts() -> Vec<&'static str> {
    let mut texts: Vec<&str> = ModelKind::ALL
        .iter()
        .map(|kind| Recipe::built_in_text("study", &(*kind).into()).unwrap())
        .collect();
    texts.push(Recipe::built_in_text("best", &ModelKind::Cnn.into()).unwrap());
    texts.sort();
    texts.dedup();
    texts
}

/// `text` changed by `mutation`; settings are the lines with a `=` outside comments.
fn mutated(text: &str, mutation: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let settings: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].trim_start().starts_with('#') && lines[i].contains('='))
        .collect();
    let setting = |line: usize| settings.get(line % settings.len().max(1)).copied();
    let split = |line: &str| {
        let (key, value) = line.split_once('=').unwrap();
        (key.to_string(), value.to_string())
    };
    match mutation {
        Mutation::Value { line, value } => {
            if let Some(i) = setting(*line) {
                lines[i] = format!("{}= {value}", split(&lines[i]).0);
            }
        }
        Mutation::Number { line, number } => {
            if let Some(i) = setting(*line) {
                let (key, value) = split(&lines[i]);
                let start = value.find(|c: char| c.is_ascii_digit());
                if let Some(start) = start {
                    let end = value[start..]
                        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
                        .map_or(value.len(), |n| start + n);
                    lines[i] = format!("{key}={}{number}{}", &value[..start], &value[end..]);
                }
            }
        }
        Mutation::Cut { line, cut } => {
            if let Some(i) = setting(*line) {
                let (key, value) = split(&lines[i]);
                let parts: Vec<&str> = value.trim().trim_matches('"').split(',').collect();
                let kept = parts[..(*cut).min(parts.len())].join(",");
                lines[i] = format!("{key}= \"{kept}\"");
            }
        }
        Mutation::Remove { line } => {
            if let Some(i) = setting(*line) {
                lines.remove(i);
            }
        }
        Mutation::Repeat { line } => {
            if let Some(i) = setting(*line) {
                lines.push(lines[i].clone());
            }
        }
        Mutation::Rename { line, key } => {
            if let Some(i) = setting(*line) {
                lines[i] = format!("{key} ={}", split(&lines[i]).1);
            }
        }
        Mutation::Truncate { at } => {
            let text = lines.join("\n");
            return text.chars().take(*at).collect();
        }
        Mutation::Replace { at, with } => {
            let mut chars: Vec<char> = lines.join("\n").chars().collect();
            if !chars.is_empty() {
                let at = at % chars.len();
                chars[at] = *with;
            }
            return chars.into_iter().collect();
        }
    }
    lines.join("\n")
}

#[test]
fn every_mutated_recipe_parses_and_applies_or_is_refused_naming_the_key() {
    let texts = built_in_texts();
    assert!(texts.len() >= 5, "{} built-in recipe texts", texts.len());
    let mut runner = TestRunner::new(Config {
        cases: RECIPE_FILE_CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let mutations = prop::collection::vec(mutation(), 1..4);
    let case = (0..texts.len(), mutations);
    let outcome = runner.run(&case, |(which, mutations)| {
        let text = mutations
            .iter()
            .fold(texts[which].to_string(), |text, m| mutated(&text, m));
        match Recipe::parse(&text) {
            Ok(recipe) => {
                let mut settings = TrainSettings::study(ModelKind::Cnn, 0);
                recipe.apply(&mut settings);
                for lr in [recipe.lr, recipe.momentum, recipe.weight_decay]
                    .iter()
                    .flatten()
                {
                    prop_assert!((*lr as f32).is_finite(), "{lr} accepted in:\n{text}");
                }
            }
            Err(error) => {
                let sentence = error.to_string();
                prop_assert!(!sentence.trim().is_empty(), "an empty error for:\n{text}");
                prop_assert!(!sentence.contains('\n'), "more than a line: {sentence}");
                if let RecipeError::Value { key, .. } = &error {
                    prop_assert!(
                        sentence.starts_with(&format!("key `{key}`: ")),
                        "{sentence}"
                    );
                }
            }
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
