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
//! **A barrier before the commit.** A share's body must be durable before
//! the row that points at it commits. Rather than each writer syncing its
//! own body (a file sync, a folder sync for its new name and one for a new
//! folder: three device flushes a share), writers that wrote a body ask for
//! the barrier, and the leader runs it once for the whole batch just before
//! the transaction commits: for the store, one `syncfs` of its file system,
//! which makes every body written so far and the folders naming them
//! durable in one flush. A batch of N shares then pays one barrier and one
//! commit instead of 3N + 1 flushes (`docs/store.md`, "Bodies made durable
//! together").
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

/// What must be durable before a batch that asked for it commits (see the
/// module docs). It may run more than once for a batch.
pub(crate) type Barrier = Box<dyn Fn() -> Result<()> + Send + Sync>;

/// Most jobs one transaction takes; a longer queue is committed in several.
/// Bounds the size of a transaction (each job writes a few hundred bytes).
const MAX_BATCH: usize = 256;

/// Batches the commits of concurrent writers. See the module docs.
pub(crate) struct GroupCommit<T> {
    state: Mutex<State<T>>,
    finished: Condvar,
    barrier: Option<Barrier>,
}

/// A queued job: its ticket, the job, and whether the barrier must run
/// before it commits.
type Queued<T> = (u64, Job<T>, bool);

struct State<T> {
    queue: Vec<Queued<T>>,
    results: HashMap<u64, Result<T>>,
    next_ticket: u64,
    leading: bool,
    /// Transactions committed and jobs they carried, for tests and figures.
    commits: u64,
    jobs: u64,
    /// Times the barrier ran.
    barriers: u64,
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
                barriers: 0,
            }),
            finished: Condvar::new(),
            barrier: None,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves the state consistent before it can
    // panic (the jobs run outside the lock), so poisoning carries no meaning.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> GroupCommit<T> {
    /// A group commit that runs `barrier` before committing a batch in
    /// which a job asked for it ([`GroupCommit::commit_after_barrier`]).
    pub(crate) fn with_barrier(barrier: Barrier) -> Self {
        Self {
            barrier: Some(barrier),
            ..Self::default()
        }
    }

    /// Runs `job` in a durable transaction, possibly together with other
    /// writers' jobs; returns once that transaction committed (or the job
    /// failed).
    pub(crate) fn commit(&self, db: &Database, path: &Path, job: Job<T>) -> Result<T> {
        self.enqueue(db, path, job, false)
    }

    /// Like [`GroupCommit::commit`], with the barrier run (once for the
    /// batch) after `job` was queued and before its transaction commits.
    /// If the barrier fails, so does the job, and nothing is committed.
    pub(crate) fn commit_after_barrier(
        &self,
        db: &Database,
        path: &Path,
        job: Job<T>,
    ) -> Result<T> {
        self.enqueue(db, path, job, true)
    }

    fn enqueue(&self, db: &Database, path: &Path, job: Job<T>, needs_barrier: bool) -> Result<T> {
        let mut state = lock(&self.state);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, job, needs_barrier));
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
            let batch: Vec<Queued<T>> = state.queue.drain(..take).collect();
            drop(state);
            let tickets: Vec<u64> = batch.iter().map(|(ticket, ..)| *ticket).collect();
            // A panicking job must not leave the others waiting for ever:
            // they get an error and the next writer leads.
            let barrier = self.barrier.as_deref();
            let outcome = catch_unwind(AssertUnwindSafe(|| run_batch(db, path, barrier, batch)));
            state = lock(&self.state);
            match outcome {
                Ok((results, transactions, barriers)) => {
                    state.barriers += barriers;
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

    /// Times the barrier ran so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn barriers(&self) -> u64 {
        lock(&self.state).barriers
    }
}

/// Runs a batch: the barrier once if a job asked for it, then all jobs in
/// one transaction if that works, else each alone (a job that asked for the
/// barrier runs it again first if the batch's barrier failed). Returns each
/// ticket's result, how many transactions committed and how many barriers
/// ran.
fn run_batch<T>(
    db: &Database,
    path: &Path,
    barrier: Option<&(dyn Fn() -> Result<()> + Send + Sync)>,
    batch: Vec<Queued<T>>,
) -> (Vec<(u64, Result<T>)>, u64, u64) {
    let mut barriers = 0;
    let mut batch_barrier = Ok(());
    if let Some(barrier) = barrier
        && batch.iter().any(|(_, _, needs)| *needs)
    {
        barriers += 1;
        batch_barrier = barrier();
    }
    let barrier_held = batch_barrier.is_ok();
    if let [(ticket, job, _)] = batch.as_slice() {
        let result = batch_barrier.and_then(|()| alone(db, path, job));
        let committed = u64::from(result.is_ok());
        return (vec![(*ticket, result)], committed, barriers);
    }
    if barrier_held && let Ok(outputs) = together(db, path, &batch) {
        let results = batch
            .iter()
            .map(|(ticket, ..)| *ticket)
            .zip(outputs.into_iter().map(Ok))
            .collect();
        return (results, 1, barriers);
    }
    let mut committed = 0;
    let results = batch
        .iter()
        .map(|(ticket, job, needs)| {
            let result = match barrier {
                Some(barrier) if *needs && !barrier_held => {
                    barriers += 1;
                    barrier().and_then(|()| alone(db, path, job))
                }
                _ => alone(db, path, job),
            };
            committed += u64::from(result.is_ok());
            (*ticket, result)
        })
        .collect();
    (results, committed, barriers)
}

fn together<T>(db: &Database, path: &Path, batch: &[Queued<T>]) -> Result<Vec<T>> {
    let txn = db.begin_write().db(path)?;
    let mut outputs = Vec::with_capacity(batch.len());
    for (_, job, _) in batch {
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
        let (results, transactions, barriers) = run_batch(
            &db,
            &path,
            None,
            vec![
                (0, insert(1), false),
                (1, failing, false),
                (2, insert(3), false),
            ],
        );
        assert_eq!(barriers, 0);
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

    #[test]
    fn the_barrier_runs_once_per_batch_before_the_commit_and_only_when_asked() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = Database::create(&path).unwrap();
        let ran = Arc::new(AtomicU64::new(0));
        let counter = ran.clone();
        let barrier: &(dyn Fn() -> Result<()> + Send + Sync) = &move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        // A job that sees whether the barrier ran before it was applied.
        let seen = |ran: Arc<AtomicU64>, key: u64| -> Job<u64> {
            Box::new(move |txn: &WriteTransaction| {
                insert(key)(txn)?;
                Ok(ran.load(Ordering::SeqCst))
            })
        };
        let (results, transactions, barriers) = run_batch(
            &db,
            &path,
            Some(barrier),
            vec![
                (0, seen(ran.clone(), 1), true),
                (1, seen(ran.clone(), 2), false),
                (2, seen(ran.clone(), 3), true),
            ],
        );
        assert_eq!((transactions, barriers), (1, 1));
        assert!(results.iter().all(|(_, result)| matches!(result, Ok(1))));
        // A batch that did not ask for it does not pay for it.
        let (_, _, barriers) = run_batch(&db, &path, Some(barrier), vec![(3, insert(4), false)]);
        assert_eq!(barriers, 0);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failing_barrier_fails_the_jobs_that_need_it_and_commits_none_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = Database::create(&path).unwrap();
        let group = GroupCommit::<u64>::with_barrier(Box::new(|| {
            Err(StoreError::Internal {
                what: "the disk said no".into(),
            })
        }));
        assert!(matches!(
            group.commit_after_barrier(&db, &path, insert(1)),
            Err(StoreError::Internal { .. })
        ));
        // A job that needs no barrier still commits.
        assert_eq!(group.commit(&db, &path, insert(2)).unwrap(), 2);
        assert_eq!(group.barriers(), 1);
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(ROWS).unwrap();
        assert!(
            table.get(1).unwrap().is_none(),
            "committed without its barrier"
        );
        assert!(table.get(2).unwrap().is_some());
    }
}
