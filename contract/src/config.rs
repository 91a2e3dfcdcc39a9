//! Reading configuration values from the environment: the few small helpers every gitfleet
//! crate's `from_env` is built from, so each variable is parsed and reported the same way.
//! Only binaries call `from_env`; libraries take the config structs (README.md lists every
//! variable, its default and its meaning).

use std::str::FromStr;
use std::time::Duration;

/// A configuration value that is present but unusable, naming its variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

/// The value of `var`; `None` when it is unset or blank.
pub fn var(var: &'static str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// `var` parsed as a `T`, else `default`.
pub fn parse_var<T: FromStr>(var: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match self::var(var) {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| ConfigError::new(var, format!("cannot parse {v:?}: {e}"))),
        None => Ok(default),
    }
}

/// `var` as a string, else `default`.
pub fn string_var(var: &'static str, default: &str) -> String {
    self::var(var).unwrap_or_else(|| default.to_string())
}

/// `var` as a number of seconds (fractions allowed), else `default`.
pub fn secs_var(var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    parse_var::<f64>(var, default.as_secs_f64()).and_then(|s| {
        Duration::try_from_secs_f64(s).map_err(|e| ConfigError::new(var, e.to_string()))
    })
}

/// `var` as a number of milliseconds, else `default`.
pub fn millis_var(var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    parse_var::<u64>(var, default.as_millis() as u64).map(Duration::from_millis)
}
