//! The state folder: a thread that folds the plugin-state journal into its keys when
//! enough has gathered, so no pipeline worker stalls for a fold.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use super::metrics::Metrics;
use crate::store::SledStore;

/// Owns the folding thread; dropping it stops the thread (after a fold in progress).
pub(crate) struct StateFolder {
    store: SledStore,
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StateFolder {
    /// Start the thread folding `store`'s journal, counting its folds in `metrics`.
    pub(crate) fn start(store: SledStore, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        // One pending wake is enough: a fold takes everything gathered up to its start.
        let (wake, asleep) = std::sync::mpsc::sync_channel(1);
        let folding = store.clone();
        let thread = std::thread::Builder::new()
            .name("aer-state-fold".into())
            .spawn(move || run(&folding, &metrics, &asleep))?;
        Ok(StateFolder {
            store,
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Have the thread fold if enough has gathered (workers call it after committing).
    pub(crate) fn poke(&self) {
        if self.store.fold_due()
            && let Some(wake) = &self.wake
            && let Err(TrySendError::Disconnected(())) = wake.try_send(())
        {
            tracing::error!("the state folding thread has stopped");
        }
    }
}

fn run(store: &SledStore, metrics: &Metrics, asleep: &Receiver<()>) {
    while asleep.recv().is_ok() {
        // Commits during the last fold may have sent a wake for what it took.
        if !store.fold_due() {
            continue;
        }
        let started = std::time::Instant::now();
        match store.fold() {
            Ok(folded) => {
                let seconds = started.elapsed().as_secs_f64();
                metrics.state_fold(folded.keys, seconds);
                tracing::debug!(
                    records = folded.records,
                    keys = folded.keys,
                    ms = (seconds * 1e3) as u64,
                    "state journal folded"
                );
            }
            // The journal keeps everything; the next wake tries again.
            Err(e) => tracing::error!("folding the state journal: {e}"),
        }
    }
}

impl Drop for StateFolder {
    fn drop(&mut self) {
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Scope, StateStore, WriteSet};

    #[test]
    fn the_thread_folds_when_due_and_stops_with_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let metrics = Arc::new(Metrics::default());
        let folder = StateFolder::start(store.clone(), metrics.clone()).unwrap();
        let scope = Scope::new("t", "p");
        let mut n = 0u32;
        // Commit the way the workers do (stage, apply, announce), which never folds.
        while !store.fold_due() {
            let mut w = WriteSet::default();
            w.put(format!("k{}", n % 10), Some(n.to_be_bytes().to_vec()));
            let mut batch = sled::Batch::default();
            let staged = store.stage(&scope, &w, &mut batch);
            store.tree().apply_batch(batch).unwrap();
            store.applied(staged, &scope, &w);
            n += 1;
        }
        assert!(store.journal_records() > 1);
        folder.poke();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // The fold is counted once it is done.
        while !metrics.render().contains("aer_state_folds_total 1") {
            assert!(std::time::Instant::now() < deadline, "not folded");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(store.journal_records(), 0);
        let last = (n - 1).to_be_bytes().to_vec();
        assert_eq!(
            store.get(&scope, &format!("k{}", (n - 1) % 10)).unwrap(),
            Some(last)
        );
        drop(folder);
        drop(store);
        // The thread has let go of the database (sled's own threads release its lock a
        // moment after the last handle drops).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let reopened = loop {
            match SledStore::open(dir.path()) {
                Ok(store) => break store,
                Err(e) => {
                    assert!(std::time::Instant::now() < deadline, "still held: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        };
        assert_eq!(reopened.journal_records(), 0);
    }
}
