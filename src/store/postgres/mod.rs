//! PostgreSQL storage: many ingest hosts, one stock.

mod url;

use std::time::Duration;

pub use url::{is_url, redact};

use super::{Result, StoreError};

pub fn open(db: &str, _lock_timeout: Duration) -> Result<Box<dyn super::Store>> {
    Err(StoreError::Unavailable {
        db: redact(db),
        what: "PostgreSQL support is not ready in this build".into(),
    })
}
