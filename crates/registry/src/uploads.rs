//! Upload sessions: blob pushes that span several requests.
//!
//! A session owns an open ingest of the content store (a temporary file in
//! `ingest/`, hashed as it grows) and the store's shared writer lock, so no
//! garbage collection can remove its file while it lives. Sessions are held
//! in memory only: a restarted server has none, and a killed one leaves
//! collectable ingest files but nothing visible.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_content::Ingest;
use berth_image::WriteGuard;

use crate::error::{ApiError, ErrorCode};

/// One upload in progress.
pub struct Session {
    pub repo: String,
    /// `None` once the session has been finished or failed.
    pub ingest: Option<Box<dyn Ingest>>,
    pub started: Instant,
    pub touched: Instant,
    pub _guard: WriteGuard,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("repo", &self.repo)
            .field("size", &self.ingest.as_ref().map(|i| i.size()))
            .finish()
    }
}

pub type SessionRef = Arc<tokio::sync::Mutex<Session>>;

/// Every open session, by id.
#[derive(Debug, Default)]
pub struct Uploads {
    map: Mutex<HashMap<String, SessionRef>>,
}

/// A fresh random session id (128 bits, hex).
pub fn new_id() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ApiError::internal(format!("getrandom: {e}")))?;
    Ok(hex::encode(b))
}

impl Uploads {
    pub fn insert(&self, id: String, session: Session, max: usize) -> Result<(), ApiError> {
        let mut map = self.map.lock().unwrap();
        if map.len() >= max {
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                "too many uploads in progress",
            ));
        }
        map.insert(id, Arc::new(tokio::sync::Mutex::new(session)));
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<SessionRef> {
        self.map.lock().unwrap().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<SessionRef> {
        self.map.lock().unwrap().remove(id)
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }

    /// Cancels sessions idle for longer than `idle` (busy ones are skipped);
    /// returns how many were cancelled.
    pub fn expire(&self, idle: Duration) -> usize {
        let mut map = self.map.lock().unwrap();
        let before = map.len();
        map.retain(|_, s| match s.try_lock() {
            Ok(s) => s.touched.elapsed() < idle && s.ingest.is_some(),
            Err(_) => true,
        });
        before - map.len()
    }
}
