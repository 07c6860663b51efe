//! `[serve]`: where the server listens and the limits that keep it serving under load.

hone_data::config_section! {
    /// The server: address and limits.
    pub struct ServeConfig {
        /// Address to bind; loopback by default (any web page a person opens can reach a loopback
        /// server, so requests are also checked for their Host and Origin).
        host: String = "127.0.0.1".to_string(),
        /// Port to listen on (0 = any free port, printed at start).
        port: u16 = 8080,
        /// Sequences one model decodes together; a request arriving mid-decode joins at the next step.
        max_batch: usize = 16,
        /// Requests waiting per model beyond the running batch; more are answered 429.
        queue: usize = 64,
        /// Largest `max_tokens` a request may ask for.
        max_tokens: usize = 2048,
        /// `max_tokens` of a chat request that names none (bounded by the model's context).
        default_max_tokens: usize = 512,
        /// Largest `n` (choices per request).
        max_n: usize = 8,
        /// Largest request body in bytes.
        max_body_bytes: usize = 1 << 20,
        /// Seconds a request may take before it is cut off.
        timeout_s: f64 = 300.0,
        /// Extra host names the server answers to besides localhost and the bound address (e.g. a
        /// machine name when binding to 0.0.0.0).
        allowed_hosts: Vec<String> = vec![],
    }
}

impl ServeConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        let ok = |c: bool, field: &str, why: &str| {
            if c { Ok(()) } else { Err(anyhow::anyhow!("serve.{field}: {why}")) }
        };
        ok(self.max_batch >= 1, "max_batch", "must be at least 1")?;
        ok(self.queue >= 1, "queue", "must be at least 1")?;
        ok(self.max_tokens >= 1, "max_tokens", "must be at least 1")?;
        ok(self.max_n >= 1, "max_n", "must be at least 1")?;
        ok(self.max_body_bytes >= 1024, "max_body_bytes", "must be at least 1024")?;
        ok(self.timeout_s > 0.0 && self.timeout_s.is_finite(), "timeout_s", "must be a positive number of seconds")
    }
}
