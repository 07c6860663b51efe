//! `hone serve`: an OpenAI-compatible HTTP server and a web app over a run's models.
//!
//! - [`server`]: routes, the request guard ([`guard`]: Host, Origin, API key), limits, shutdown.
//! - [`v1`]: the OpenAI endpoints over [`openai`]'s request types, errors in [`error`]'s shape.
//! - [`engine`]: one decoding thread per model with continuous batching; [`generate`] submits
//!   work to it and gathers the results.
//! - [`app`]: the web page (chat, compare, grade), with [`checks`] (automatic verdicts) and
//!   [`feedback`] (a person's judgements as preference pairs).

pub mod app;
pub mod checks;
pub mod config;
pub mod engine;
pub mod error;
pub mod feedback;
pub mod generate;
pub mod guard;
pub mod openai;
pub mod server;
pub mod state;
pub mod v1;

pub use config::ServeConfig;
pub use engine::Kind;
pub use server::{Options, Served, router, serve, state};
