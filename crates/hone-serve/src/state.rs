//! What every handler shares: the served models, the limits, the run folder, the key.

use crate::config::ServeConfig;
use crate::engine::ModelHandle;
use crate::error::ApiError;
use std::path::PathBuf;
use std::sync::Arc;

pub struct AppState {
    pub models: Vec<ModelHandle>,
    pub cfg: ServeConfig,
    /// The run whose stages are served: its report is linked and judgements go to its
    /// `feedback/` folder. `None` when only `-m` models are served.
    pub run_dir: Option<PathBuf>,
    pub api_key: Option<String>,
    /// Host names (without port) requests may be addressed to.
    pub hosts: Vec<String>,
    /// Serialises this process's writes to the feedback file (the file lock covers other processes).
    pub feedback: std::sync::Mutex<()>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    /// The model called `id`, or a 404 listing the served ones.
    pub fn model(&self, id: &str) -> Result<&ModelHandle, ApiError> {
        self.models.iter().find(|m| m.id == id).ok_or_else(|| ApiError::unknown_model(id, &self.ids()))
    }

    pub fn ids(&self) -> Vec<String> {
        self.models.iter().map(|m| m.id.clone()).collect()
    }

    /// The request time limit from now.
    pub fn deadline(&self) -> std::time::Instant {
        crate::engine::deadline(self.cfg.timeout_s)
    }
}
