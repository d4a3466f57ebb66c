//! Reading a TOML table setting by setting, collecting every problem.
//!
//! serde stops at the first bad value; an operator fixing a configuration
//! wants the whole list at once. So the file is parsed into a
//! [`toml::Table`] and read here one named setting at a time: a missing,
//! mistyped or out-of-range value is recorded as a [`ConfigProblem`] naming
//! its full path (`bursar_sftp.port`) and reading goes on. Keys nobody
//! asked for are reported as unknown, so a typo never silently falls back
//! to a default.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// A required setting left out, and one given blank: both say what to do.
pub const MISSING: &str = "missing; it has no default, so add it";
pub const EMPTY: &str = "is empty; it has no default, so give it a value";

/// One bad or missing setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The setting's path, e.g. `alma.base_url`, or a secret's name.
    pub setting: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

/// Problems found so far, in the order the settings were read.
#[derive(Debug, Default)]
pub struct Problems(RefCell<Vec<ConfigProblem>>);

impl Problems {
    pub fn add(&self, setting: impl Into<String>, message: impl Into<String>) {
        self.0.borrow_mut().push(ConfigProblem {
            setting: setting.into(),
            message: message.into(),
        });
    }

    pub fn into_vec(self) -> Vec<ConfigProblem> {
        self.0.into_inner()
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }
}

/// What a TOML value is, for "expected text, found ..." messages.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the text {s:?}"),
        Value::Integer(i) => format!("the number {i}"),
        Value::Float(x) => format!("the number {x}"),
        Value::Boolean(b) => format!("{b}"),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "a list".to_string(),
        Value::Table(_) => "a table".to_string(),
    }
}

/// A table of the file (or a missing one: every setting then takes its
/// default or is reported missing).
pub struct Section<'a> {
    path: String,
    table: Option<&'a Table>,
    used: RefCell<BTreeSet<String>>,
    problems: &'a Problems,
    base_dir: &'a Path,
}

impl<'a> Section<'a> {
    pub fn root(table: &'a Table, problems: &'a Problems, base_dir: &'a Path) -> Section<'a> {
        Section {
            path: String::new(),
            table: Some(table),
            used: RefCell::default(),
            problems,
            base_dir,
        }
    }

    /// The full path of `key` in this section.
    pub fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn problem(&self, key: &str, message: impl Into<String>) {
        self.problems.add(self.name(key), message);
    }

    pub fn problems(&self) -> &'a Problems {
        self.problems
    }

    pub fn is_present(&self) -> bool {
        self.table.is_some()
    }

    /// Whether `key` is given (it then counts as a known setting).
    pub fn has(&self, key: &str) -> bool {
        self.used.borrow_mut().insert(key.to_string());
        self.table.is_some_and(|t| t.contains_key(key))
    }

    /// Records a problem whose message may start with "setting `path` "
    /// (the library crates' validation messages do): the path becomes the
    /// problem's setting.
    pub fn library_problem(&self, fallback_key: &str, message: &str) {
        if let Some(rest) = message.strip_prefix("setting `")
            && let Some((setting, detail)) = rest.split_once("` ")
        {
            self.problems.add(setting, detail);
        } else {
            self.problem(fallback_key, message);
        }
    }

    fn raw(&self, key: &str) -> Option<&'a Value> {
        self.used.borrow_mut().insert(key.to_string());
        self.table.and_then(|t| t.get(key))
    }

    /// A sub-table; missing is fine (its settings take defaults).
    pub fn section(&self, key: &str) -> Section<'a> {
        let table = match self.raw(key) {
            None => None,
            Some(Value::Table(table)) => Some(table),
            Some(other) => {
                self.problem(key, format!("expected a table, found {}", describe(other)));
                None
            }
        };
        Section {
            path: self.name(key),
            table,
            used: RefCell::default(),
            problems: self.problems,
            base_dir: self.base_dir,
        }
    }

    pub fn string(&self, key: &str) -> Option<String> {
        match self.raw(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.problem(key, format!("expected text, found {}", describe(other)));
                None
            }
        }
    }

    /// Text that must be there and not blank.
    pub fn required_string(&self, key: &str) -> Option<String> {
        if !self.has(key) {
            self.raw(key);
            self.problem(key, MISSING);
            return None;
        }
        let value = self.string(key)?;
        if value.trim().is_empty() {
            self.problem(key, EMPTY);
            return None;
        }
        Some(value)
    }

    pub fn string_or(&self, key: &str, default: &str) -> String {
        self.string(key).unwrap_or_else(|| default.to_string())
    }

    pub fn integer(&self, key: &str) -> Option<i64> {
        match self.raw(key)? {
            Value::Integer(i) => Some(*i),
            other => {
                self.problem(
                    key,
                    format!("expected a whole number, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A whole number in `min..=max`, or `default` when absent (or bad,
    /// after recording the problem).
    pub fn number_in(&self, key: &str, min: i64, max: i64, default: i64) -> i64 {
        match self.integer(key) {
            None => default,
            Some(n) if (min..=max).contains(&n) => n,
            Some(n) => {
                self.problem(
                    key,
                    format!("{n} is out of range; it must be {min} to {max}"),
                );
                default
            }
        }
    }

    pub fn u32_in(&self, key: &str, min: u32, max: u32, default: u32) -> u32 {
        let n = self.number_in(key, i64::from(min), i64::from(max), i64::from(default));
        u32::try_from(n).unwrap_or(default)
    }

    pub fn u64_in(&self, key: &str, min: u64, max: u64, default: u64) -> u64 {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let min = i64::try_from(min).unwrap_or(0);
        let default_i = i64::try_from(default).unwrap_or(max);
        u64::try_from(self.number_in(key, min, max, default_i)).unwrap_or(default)
    }

    pub fn port(&self, key: &str, default: u16) -> u16 {
        match self.integer(key) {
            None => default,
            Some(n) => match u16::try_from(n) {
                Ok(port) if port > 0 => port,
                _ => {
                    self.problem(key, format!("{n} is not a port (1 to 65535)"));
                    default
                }
            },
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.raw(key) {
            None => default,
            Some(Value::Boolean(b)) => *b,
            Some(other) => {
                self.problem(
                    key,
                    format!("expected true or false, found {}", describe(other)),
                );
                default
            }
        }
    }

    /// One of `choices`, or `default` when absent.
    pub fn choice(&self, key: &str, choices: &[&str], default: &str) -> String {
        match self.string(key) {
            None => default.to_string(),
            Some(value) if choices.contains(&value.as_str()) => value,
            Some(value) => {
                self.problem(
                    key,
                    format!("{value:?} is not one of {}", choices.join(", ")),
                );
                default.to_string()
            }
        }
    }

    /// A path; a relative one is taken from the configuration file's
    /// folder, so cron's working folder does not matter.
    pub fn path_or(&self, key: &str, default: &str) -> PathBuf {
        self.resolve(&self.string_or(key, default))
    }

    pub fn optional_path(&self, key: &str) -> Option<PathBuf> {
        let value = self.string(key)?;
        if value.trim().is_empty() {
            self.problem(key, "is empty; leave the setting out instead");
            return None;
        }
        Some(self.resolve(&value))
    }

    pub fn required_path(&self, key: &str) -> Option<PathBuf> {
        self.required_string(key).map(|p| self.resolve(&p))
    }

    pub fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// A list of text.
    pub fn strings(&self, key: &str) -> Vec<String> {
        match self.raw(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.problem(
                            &format!("{key}[{index}]"),
                            format!("expected text, found {}", describe(other)),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                self.problem(key, format!("expected a list, found {}", describe(other)));
                Vec::new()
            }
        }
    }

    /// A value read whole by its own serde definition (account rules, the
    /// layout); its error is reported under `key`.
    pub fn serde<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let value = self.raw(key)?.clone();
        match value.try_into::<T>() {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                let message = error.to_string();
                self.problem(key, message.trim().replace('\n', " "));
                None
            }
        }
    }

    /// Reports every key of this table that no one read.
    pub fn finish(&self) {
        let Some(table) = self.table else { return };
        let used = self.used.borrow();
        for key in table.keys() {
            if !used.contains(key) {
                let near = used.iter().find(|known| distance(known, key) <= 2);
                let message = match near {
                    Some(known) => format!("unknown setting; did you mean {known}?"),
                    None => {
                        let known: Vec<&str> = used.iter().map(String::as_str).collect();
                        format!("unknown setting (known here: {})", known.join(", "))
                    }
                };
                self.problems.add(self.name(key), message);
            }
        }
    }
}

/// Edit distance, for "did you mean" (short keys only, so quadratic is fine).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            let value = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
            current.push(value);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    #[test]
    fn distance_counts_edits() {
        assert_eq!(super::distance("base_url", "base_ulr"), 2);
        assert_eq!(super::distance("port", "port"), 0);
        assert_eq!(super::distance("host", "user"), 4);
    }
}
