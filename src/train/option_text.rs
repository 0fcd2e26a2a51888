//! The text of a training option with settings: `NAME[:key=value,key=value,...]`, as in
//! `plateau:factor=0.5,patience=5` or `val_loss:patience=10`. A bare number continues the
//! previous key's list (`milestones=30,60,gamma=0.1`); a bare word is a key set to `true`
//! (`nesterov`). Each getter says in one sentence which key is wrong and why; [`OptionText::finish`]
//! refuses keys nobody asked for, naming the ones the option takes.

use std::str::FromStr;

/// Whether `accept` takes `value` as given and as the f32 the kernels compute with: NaN,
/// infinities and numbers beyond f32's range never pass (`--lr 1e300` would be an infinite
/// rate on the GPU). The flags and recipe files hold their numbers to it.
pub fn accepted_in_f32(value: f64, accept: impl Fn(f64) -> bool) -> bool {
    let on_the_gpu = value as f32 as f64;
    on_the_gpu.is_finite() && accept(value) && accept(on_the_gpu)
}

pub struct OptionText<'a> {
    /// What comes before the colon: a schedule's name, a monitored value, an epoch.
    pub name: &'a str,
    given: Vec<(&'a str, String)>,
    asked: Vec<&'static str>,
}

impl<'a> OptionText<'a> {
    pub fn parse(text: &'a str) -> Result<Self, String> {
        let (name, rest) = text.split_once(':').unwrap_or((text, ""));
        let mut given: Vec<(&str, String)> = Vec::new();
        for token in rest.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token.split_once('=') {
                Some((key, value)) => {
                    let key = key.trim();
                    if given.iter().any(|(k, _)| *k == key) {
                        return Err(format!("`{key}` is given twice"));
                    }
                    given.push((key, value.trim().to_string()));
                }
                None if token.parse::<f64>().is_ok() => match given.last_mut() {
                    Some((_, value)) => *value = format!("{value},{token}"),
                    None => return Err(format!("`{token}` has no key: write key={token}")),
                },
                None => given.push((token, "true".to_string())),
            }
        }
        Ok(OptionText {
            name: name.trim(),
            given,
            asked: Vec::new(),
        })
    }

    fn raw(&mut self, key: &'static str) -> Option<&str> {
        self.asked.push(key);
        self.given
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A finite number that `accept` takes (`what` says which), or `default`.
    pub fn number(
        &mut self,
        key: &'static str,
        default: f64,
        accept: impl Fn(f64) -> bool,
        what: &str,
    ) -> Result<f64, String> {
        Ok(self.optional_number(key, accept, what)?.unwrap_or(default))
    }

    /// A finite number that `accept` takes, or none when the key is not given.
    pub fn optional_number(
        &mut self,
        key: &'static str,
        accept: impl Fn(f64) -> bool,
        what: &str,
    ) -> Result<Option<f64>, String> {
        let Some(text) = self.raw(key) else {
            return Ok(None);
        };
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() && accept(value) => Ok(Some(value)),
            _ => Err(format!("`{key}` must be {what}, not `{text}`")),
        }
    }

    /// A whole number of at least `min`, or `default`.
    pub fn count(
        &mut self,
        key: &'static str,
        default: usize,
        min: usize,
    ) -> Result<usize, String> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        match text.parse::<usize>() {
            Ok(value) if value >= min => Ok(value),
            _ => Err(format!(
                "`{key}` must be a whole number of at least {min}, not `{text}`"
            )),
        }
    }

    /// Whole numbers of at least `min`, separated by commas; empty when not given.
    pub fn counts(&mut self, key: &'static str, min: usize) -> Result<Vec<usize>, String> {
        let Some(text) = self.raw(key) else {
            return Ok(Vec::new());
        };
        text.split(',')
            .map(|item| match item.parse::<usize>() {
                Ok(value) if value >= min => Ok(value),
                _ => Err(format!(
                    "`{key}` must be whole numbers of at least {min}, not `{text}`"
                )),
            })
            .collect()
    }

    /// `true` or `false`, or `default`.
    pub fn flag(&mut self, key: &'static str, default: bool) -> Result<bool, String> {
        self.choice(key, default, &[("true", true), ("false", false)])
    }

    /// One of `choices` by name, or `default`.
    pub fn choice<T: Copy>(
        &mut self,
        key: &'static str,
        default: T,
        choices: &[(&str, T)],
    ) -> Result<T, String> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|(name, _)| *name == text)
            .map(|&(_, value)| value)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                format!("`{key}` must be {}, not `{text}`", names.join(" or "))
            })
    }

    /// The name as a `T` (an epoch number, a monitored value), or why not.
    pub fn name_as<T: FromStr>(&self, what: &str) -> Result<T, String> {
        self.name
            .parse()
            .map_err(|_| format!("`{}` is not {what}", self.name))
    }

    /// Refuses any key no getter asked for: `what` (e.g. "the step schedule") takes only those.
    pub fn finish(self, what: &str) -> Result<(), String> {
        match self.given.iter().find(|(k, _)| !self.asked.contains(k)) {
            None => Ok(()),
            Some((key, _)) if self.asked.is_empty() => {
                Err(format!("{what} takes no settings, but `{key}` is given"))
            }
            Some((key, _)) => Err(format!(
                "{what} has no setting `{key}`; it takes {}",
                self.asked.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OptionText;

    #[test]
    fn lists_flags_and_unknown_keys() {
        let mut text = OptionText::parse("multistep:milestones=3,6,9,gamma=0.5,nesterov").unwrap();
        assert_eq!(text.name, "multistep");
        assert_eq!(text.counts("milestones", 1).unwrap(), [3, 6, 9]);
        assert_eq!(
            text.number("gamma", 0.1, |g| g > 0.0, "above 0").unwrap(),
            0.5
        );
        assert!(text.flag("nesterov", false).unwrap());
        assert!(text.finish("multistep").is_ok());

        let mut text = OptionText::parse("step:gama=0.5").unwrap();
        text.count("step_size", 1, 1).unwrap();
        text.number("gamma", 0.1, |g| g > 0.0, "above 0").unwrap();
        let error = text.finish("the step schedule").unwrap_err();
        assert_eq!(
            error,
            "the step schedule has no setting `gama`; it takes step_size, gamma"
        );
        assert!(OptionText::parse("step:gamma=1,gamma=2").is_err());
        assert!(OptionText::parse("step:0.5").is_err());
    }
}
