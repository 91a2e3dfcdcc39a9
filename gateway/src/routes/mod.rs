//! The routes of the API, by what they act on.

pub mod fleet;
pub mod health;
pub mod jobs;
