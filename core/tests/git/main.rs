//! Integration tests of the git runner (`gitfleet_core::git`) against the real git binary,
//! in temp dirs, with loopback servers standing in for remotes. No network, no shared
//! state: every test has its own HOME, repositories and ports. `sandbox` drives the
//! sandboxes (template, mirrors, recycling) the same way, against a `git daemon`.

mod support;

mod credentials;
mod failures;
mod hardening;
mod jail;
mod limits;
mod sandbox;
