//! What `inbox` hands a run, and nothing else uses: the fence that ties the
//! run's commit to the claim on its file, and the checking catalog kept in
//! memory between runs.
//!
//! The fence is checked between chunks (a claim lost, or a stop asked for by
//! a signal, ends the run early), and once inside the run's transaction just
//! before its commit, where [`crate::store::InboxFence::fence`] holds the
//! claim to the end of the transaction: a run whose claim was taken over, or
//! whose heartbeat could not renew it, rolls back instead of committing.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::Run;
use crate::store::{ClaimToken, Queries, Tx};
use crate::validate::Catalog;

/// Why a fenced run stopped before its commit; nothing of it was committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Stopped {
    #[error("{file}: this worker lost its claim on the file (its lease ended, or another worker took it over); nothing of run {run} was committed: the worker holding the claim processes the file")]
    ClaimLost { file: String, run: i64 },
    #[error("{file}: stopped by a signal; nothing of run {run} was committed: the file stays in the inbox for the next worker")]
    Signal { file: String, run: i64 },
}

impl Stopped {
    /// The reason a run ended, when it is one of these.
    pub fn of(e: &anyhow::Error) -> Option<&Stopped> {
        e.chain().find_map(|c| c.downcast_ref::<Stopped>())
    }
}

/// A run's hold on the claim of its file.
#[derive(Debug, Clone)]
pub struct Fence {
    claim: ClaimToken,
    /// The file, for messages.
    file: String,
    /// Set by the heartbeat when it could not renew the claim in time.
    lost: Arc<AtomicBool>,
    /// The run's id once it has one (0 before).
    run_id: Arc<AtomicI64>,
}

impl Fence {
    pub fn new(claim: ClaimToken, file: &str) -> Fence {
        Fence {
            claim,
            file: file.to_string(),
            lost: Arc::default(),
            run_id: Arc::default(),
        }
    }

    pub fn claim(&self) -> &ClaimToken {
        &self.claim
    }

    /// The claim is no longer this worker's: the run must not commit.
    pub fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// The id of the run it fenced, once the run had its history row.
    pub fn run_id(&self) -> Option<i64> {
        Some(self.run_id.load(Ordering::SeqCst)).filter(|id| *id > 0)
    }

    fn stopped(&self) -> Option<Stopped> {
        let (file, run) = (self.file.clone(), self.run_id.load(Ordering::SeqCst));
        if self.is_lost() {
            Some(Stopped::ClaimLost { file, run })
        } else if crate::interrupt::stop_requested() {
            Some(Stopped::Signal { file, run })
        } else {
            None
        }
    }
}

/// A catalog as read at a version.
type Kept = Option<(i64, Arc<Catalog>)>;

/// The catalog validation checks against, kept between the runs of one
/// worker and read again only when its version in the database changed.
#[derive(Clone, Default)]
pub struct CatalogCache(Arc<Mutex<Kept>>);

impl std::fmt::Debug for CatalogCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = self.0.lock().ok().and_then(|c| c.as_ref().map(|(v, _)| *v));
        f.debug_tuple("CatalogCache").field(&version).finish()
    }
}

impl CatalogCache {
    /// The catalog as `q` sees it: the kept one while its version stands.
    fn get(&self, q: &mut dyn Queries) -> Result<Arc<Catalog>> {
        let version = q.catalog_version()?;
        let mut kept = self
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("the catalog cache broke"))?;
        if let Some((v, catalog)) = kept.as_ref() {
            if *v == version {
                return Ok(Arc::clone(catalog));
            }
        }
        let catalog = Arc::new(Catalog::new(q.products()?));
        *kept = Some((version, Arc::clone(&catalog)));
        Ok(catalog)
    }
}

impl Run<'_> {
    /// The catalog to check against: kept between runs where the options
    /// keep one, else read now.
    pub(super) fn checking_catalog(&self, q: &mut dyn Queries) -> Result<Arc<Catalog>> {
        match &self.opts.catalog_cache {
            Some(cache) => cache.get(q),
            None => Ok(Arc::new(Catalog::new(q.products()?))),
        }
    }

    /// The run has its id.
    pub(super) fn fence_started(&self, run_id: i64) {
        if let Some(f) = &self.opts.fence {
            f.run_id.store(run_id, Ordering::SeqCst);
        }
    }

    /// Between chunks: a fenced run whose claim was lost, or that a signal
    /// asked to stop, goes no further.
    pub(super) fn fence_check(&self) -> Result<()> {
        match self.opts.fence.as_ref().and_then(Fence::stopped) {
            Some(stopped) => Err(stopped.into()),
            None => Ok(()),
        }
    }

    /// Just before the commit, inside the run's transaction: the claim is
    /// still this worker's, and held until the commit (see the module doc).
    pub(super) fn fence_hold(&self, tx: &mut dyn Tx, run_id: i64) -> Result<()> {
        let Some(f) = &self.opts.fence else {
            return Ok(());
        };
        self.fence_check()?;
        if !tx.fence(&f.claim, Some(run_id))? {
            f.lose();
            self.fence_check()?;
        }
        Ok(())
    }
}
