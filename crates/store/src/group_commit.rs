//! Group commit: metadata writes that arrive while another commit is running
//! wait for it, then share the next redb transaction, so that N concurrent
//! puts pay for one durable commit (one fsync) instead of queueing behind N.
//!
//! redb has a single writer and makes every commit durable before it
//! returns. A holder that receives the shares of several stripes at once
//! used to spend most of each put waiting for the other puts' commits
//! (`docs/store.md`, "Group commit", has the figures).
//!
//! The scheme is the classic leader/follower one. Every writer queues its
//! job and waits. The first waiter that finds no commit running becomes the
//! leader: it takes every queued job, runs them all in one transaction and
//! commits. If a job or the commit fails, the leader runs each job again in
//! a transaction of its own, so one failing job cannot fail the others or be
//! half-applied with them. Jobs only write to the transaction (no other side
//! effect), which is what makes running one twice safe.
//!
//! Written by hand: redb has no group commit, and no crate adds one.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use redb::{Database, WriteTransaction};

use crate::error::{DbContext, Result, StoreError};

/// A metadata write: applies itself to a transaction and says what it did.
/// It may run twice (see the module docs), so it must only write to the
/// transaction it is given.
pub(crate) type Job<T> = Box<dyn Fn(&WriteTransaction) -> Result<T> + Send>;

/// Most jobs one transaction takes; a longer queue is committed in several.
/// Bounds the size of a transaction (each job writes a few hundred bytes).
const MAX_BATCH: usize = 256;

/// Batches the commits of concurrent writers. See the module docs.
pub(crate) struct GroupCommit<T> {
    state: Mutex<State<T>>,
    finished: Condvar,
}

struct State<T> {
    queue: Vec<(u64, Job<T>)>,
    results: HashMap<u64, Result<T>>,
    next_ticket: u64,
    leading: bool,
    /// Transactions committed and jobs they carried, for tests and figures.
    commits: u64,
    jobs: u64,
}

impl<T> Default for GroupCommit<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                queue: Vec::new(),
                results: HashMap::new(),
                next_ticket: 0,
                leading: false,
                commits: 0,
                jobs: 0,
            }),
            finished: Condvar::new(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves the state consistent before it can
    // panic (the jobs run outside the lock), so poisoning carries no meaning.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> GroupCommit<T> {
    /// Runs `job` in a durable transaction, possibly together with other
    /// writers' jobs; returns once that transaction committed (or the job
    /// failed).
    pub(crate) fn commit(&self, db: &Database, path: &Path, job: Job<T>) -> Result<T> {
        let mut state = lock(&self.state);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, job));
        loop {
            if let Some(result) = state.results.remove(&ticket) {
                return result;
            }
            if state.leading {
                state = self
                    .finished
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.leading = true;
            let take = state.queue.len().min(MAX_BATCH);
            let batch: Vec<(u64, Job<T>)> = state.queue.drain(..take).collect();
            drop(state);
            let tickets: Vec<u64> = batch.iter().map(|(ticket, _)| *ticket).collect();
            // A panicking job must not leave the others waiting for ever:
            // they get an error and the next writer leads.
            let outcome = catch_unwind(AssertUnwindSafe(|| run_batch(db, path, batch)));
            state = lock(&self.state);
            match outcome {
                Ok((results, transactions)) => {
                    state.commits += transactions;
                    state.jobs += results.len() as u64;
                    state.results.extend(results);
                }
                Err(_) => {
                    for ticket in tickets {
                        state.results.insert(
                            ticket,
                            Err(StoreError::Internal {
                                what: "a metadata write panicked".into(),
                            }),
                        );
                    }
                }
            }
            state.leading = false;
            self.finished.notify_all();
        }
    }

    /// Transactions committed so far, and the jobs they carried.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn counts(&self) -> (u64, u64) {
        let state = lock(&self.state);
        (state.commits, state.jobs)
    }
}

/// Runs a batch: all in one transaction if that works, else each alone.
/// Returns each ticket's result and how many transactions committed.
fn run_batch<T>(
    db: &Database,
    path: &Path,
    batch: Vec<(u64, Job<T>)>,
) -> (Vec<(u64, Result<T>)>, u64) {
    if batch.len() > 1
        && let Ok(outputs) = together(db, path, &batch)
    {
        let results = batch
            .iter()
            .map(|(ticket, _)| *ticket)
            .zip(outputs.into_iter().map(Ok))
            .collect();
        return (results, 1);
    }
    let mut committed = 0;
    let results = batch
        .iter()
        .map(|(ticket, job)| {
            let result = alone(db, path, job);
            committed += u64::from(result.is_ok());
            (*ticket, result)
        })
        .collect();
    (results, committed)
}

fn together<T>(db: &Database, path: &Path, batch: &[(u64, Job<T>)]) -> Result<Vec<T>> {
    let txn = db.begin_write().db(path)?;
    let mut outputs = Vec::with_capacity(batch.len());
    for (_, job) in batch {
        match job(&txn) {
            Ok(output) => outputs.push(output),
            Err(error) => {
                let _ = txn.abort();
                return Err(error);
            }
        }
    }
    txn.commit().db(path)?;
    Ok(outputs)
}

fn alone<T>(db: &Database, path: &Path, job: &Job<T>) -> Result<T> {
    let txn = db.begin_write().db(path)?;
    match job(&txn) {
        Ok(output) => {
            txn.commit().db(path)?;
            Ok(output)
        }
        Err(error) => {
            let _ = txn.abort();
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Barrier};

    use redb::{ReadableDatabase, TableDefinition};

    use super::*;

    const ROWS: TableDefinition<'_, u64, u64> = TableDefinition::new("rows");

    fn insert(key: u64) -> Job<u64> {
        Box::new(move |txn: &WriteTransaction| {
            txn.open_table(ROWS)
                .db(Path::new("test"))?
                .insert(key, key * 10)
                .db(Path::new("test"))?;
            Ok(key)
        })
    }

    #[test]
    fn concurrent_writers_share_transactions_and_every_write_lands() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = Arc::new(Database::create(&path).unwrap());
        let group = Arc::new(GroupCommit::<u64>::default());
        let threads = 8;
        let per_thread = 50;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let (db, group, path, start) =
                    (db.clone(), group.clone(), path.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..per_thread {
                        let key = t * 1000 + i;
                        assert_eq!(group.commit(&db, &path, insert(key)).unwrap(), key);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let (commits, jobs) = group.counts();
        assert_eq!(jobs, threads as u64 * per_thread);
        assert!(commits <= jobs);
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(ROWS).unwrap();
        for t in 0..threads as u64 {
            for i in 0..per_thread {
                let key = t * 1000 + i;
                assert_eq!(table.get(key).unwrap().unwrap().value(), key * 10);
            }
        }
    }

    #[test]
    fn a_failing_job_fails_alone_and_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = Database::create(&path).unwrap();
        // Run a batch directly, so that the three jobs surely share a
        // transaction first.
        let failing: Job<u64> = Box::new(|txn: &WriteTransaction| {
            txn.open_table(ROWS)
                .db(Path::new("test"))?
                .insert(2, 20)
                .db(Path::new("test"))?;
            Err(StoreError::Internal {
                what: "refused".into(),
            })
        });
        let (results, transactions) = run_batch(
            &db,
            &path,
            vec![(0, insert(1)), (1, failing), (2, insert(3))],
        );
        assert_eq!(transactions, 2, "the two good jobs committed, each alone");
        assert!(matches!(results[0], (0, Ok(1))));
        assert!(matches!(results[1], (1, Err(StoreError::Internal { .. }))));
        assert!(matches!(results[2], (2, Ok(3))));
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(ROWS).unwrap();
        assert!(table.get(1).unwrap().is_some());
        assert!(
            table.get(2).unwrap().is_none(),
            "the failed job wrote nothing"
        );
        assert!(table.get(3).unwrap().is_some());
    }

    #[test]
    fn a_panicking_job_does_not_strand_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = Database::create(&path).unwrap();
        let group = GroupCommit::<u64>::default();
        let panicking: Job<u64> = Box::new(|_| panic!("a bug in a job"));
        assert!(matches!(
            group.commit(&db, &path, panicking),
            Err(StoreError::Internal { .. })
        ));
        assert_eq!(group.commit(&db, &path, insert(7)).unwrap(), 7);
    }
}
