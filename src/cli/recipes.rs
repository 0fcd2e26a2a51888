//! `fer recipes` and `--recipe`: the built-in recipes by name, or a recipe file.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use fer::nn::models::ModelChoice;
use fer::train::recipe::{Recipe, BUILT_IN};

/// The recipe `--recipe` names for `model`: a built-in name, or a TOML file (any argument that
/// is not a built-in name). Errors name the recipe.
pub fn load(name: &str, model: &ModelChoice) -> anyhow::Result<Recipe> {
    if BUILT_IN.iter().any(|(built_in, _)| *built_in == name) {
        let text = Recipe::built_in_text(name, model)?;
        return Recipe::parse(text)
            .with_context(|| format!("built-in recipe {name} for {}", model.name()));
    }
    let path = Path::new(name);
    if path.extension().is_none() && !path.exists() {
        return Err(fer::train::recipe::RecipeError::Unknown(name.to_string()).into());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read recipe {}", path.display()))?;
    Recipe::parse(&text).with_context(|| format!("recipe {}", path.display()))
}

/// `fer recipes`: each built-in recipe with what it is.
pub fn list() -> String {
    let mut text = String::new();
    for (name, about) in BUILT_IN {
        let _ = writeln!(text, "{name:<7} {about}");
    }
    text.push_str(
        "\n`fer recipes --show NAME [--model M]` prints one as TOML to copy and edit; \
         `fer train --recipe FILE.toml` reads it back (explicit flags override its values).\n",
    );
    text
}

/// `fer recipes --show NAME`: the built-in recipe's text for `model`, comments included.
pub fn show(name: &str, model: &ModelChoice) -> anyhow::Result<&'static str> {
    Ok(Recipe::built_in_text(name, model)?)
}
