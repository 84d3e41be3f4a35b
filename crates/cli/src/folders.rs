//! Folders from the command line: `kith put DIR`, `kith ls CAP[/PATH]`,
//! and `kith get` of a folder, through the running node's API.
//!
//! `put` walks the folder first (symlinks, special files and names a folder
//! listing cannot hold are skipped, each with a line on stderr), stores
//! every file, a few at a time, with one progress display for the whole
//! folder, then stores one listing per folder from the deepest up: a
//! folder's listing names its subfolders by their capabilities, so the top
//! folder's capability reaches the whole tree.
//!
//! `get` writes a folder into a hidden folder beside the destination and
//! renames it into place only once every file has arrived, so a failed get
//! leaves nothing half-written; it never writes outside that folder (names
//! are checked by the node when it reads a listing, and again here).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context as _, anyhow, bail};
use kith_api::types::{Listing, NewFolder, NewFolderEntry, Stored};
use kith_base::ByteSize;

use crate::client::ApiClient;
use crate::files::{Progress, escape, fetch, put_stream};

/// Files stored or fetched at once: enough to keep a node's pipeline busy
/// with large files, few enough not to crowd out other work or to hold
/// more than a few files' stripes in the node's memory.
const PARALLEL_FILES: usize = 4;
/// Files stored at once while they are small ([`SMALL_FILE`]): a small
/// put is mostly waiting (a lookup, the holders' durable commits), so more
/// of them at once fill the node's group commits. 16 stored a folder of
/// 4 KiB files about 1.6 times as fast as 4 did (`bench/publish.sh`).
const PARALLEL_SMALL_FILES: usize = 16;
/// Below this size a file counts as small; at most [`PARALLEL_FILES`]
/// larger ones are stored at once, whatever else runs beside them.
const SMALL_FILE: u64 = 1 << 20;
/// Deepest folder nesting walked.
const MAX_DEPTH: usize = 256;

/// A folder found by the walk.
struct WalkedFolder {
    /// Its path under the top folder ("" for the top one).
    relative: String,
    /// Its files: name and full path.
    files: Vec<(String, PathBuf)>,
    /// Its subfolders: name and index in the walk.
    folders: Vec<(String, usize)>,
}

/// `kith put DIR`: returns the folder's capability.
pub(crate) fn put(api: &ApiClient, root: &Path, shares: Option<&str>) -> anyhow::Result<String> {
    let (walked, skipped) = walk(root)?;
    let files: Vec<(usize, usize)> = walked
        .iter()
        .enumerate()
        .flat_map(|(folder, walked)| (0..walked.files.len()).map(move |file| (folder, file)))
        .collect();
    let total: u64 = files
        .iter()
        .filter_map(|&(folder, file)| std::fs::metadata(&walked[folder].files[file].1).ok())
        .map(|meta| meta.len())
        .sum();
    let progress = Progress::new("stored", Some(total));
    let large_files = Gate::new(PARALLEL_FILES);
    let stored = parallel(files.len(), PARALLEL_SMALL_FILES, |index| {
        let (folder, file) = files[index];
        let (name, path) = &walked[folder].files[file];
        let opened = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let len = opened.metadata().ok().map(|meta| meta.len());
        let _slot = (len.unwrap_or(u64::MAX) >= SMALL_FILE).then(|| large_files.enter());
        put_stream(api, Box::new(opened), len, Some(name), shares, &progress)
            .with_context(|| format!("cannot store {}", path.display()))
    });
    progress.finish(stored.is_ok());
    let stored = stored?;
    // Listings from the deepest folder up: the walk lists a folder before
    // its subfolders, so backwards every subfolder is done before its parent.
    let mut of_file = stored.into_iter();
    let mut per_folder: Vec<Vec<NewFolderEntry>> = walked
        .iter()
        .map(|folder| {
            folder
                .files
                .iter()
                .zip(of_file.by_ref())
                .map(|((name, _), stored)| NewFolderEntry {
                    name: name.clone(),
                    capability: stored.capability,
                    size: stored.size,
                })
                .collect()
        })
        .collect();
    let mut folder_caps: Vec<Option<Stored>> = (0..walked.len()).map(|_| None).collect();
    for index in (0..walked.len()).rev() {
        let mut entries = std::mem::take(&mut per_folder[index]);
        for (name, sub) in &walked[index].folders {
            let Some(stored) = folder_caps[*sub].take() else {
                bail!("internal: folder {name} was not stored before its parent");
            };
            entries.push(NewFolderEntry {
                name: name.clone(),
                capability: stored.capability,
                size: stored.size,
            });
        }
        let query = shares
            .map(|shares| format!("?shares={}", escape(shares)))
            .unwrap_or_default();
        let stored: Stored = api
            .post(&format!("/v1/folder{query}"), &NewFolder { entries })
            .with_context(|| {
                format!(
                    "cannot store the listing of {}",
                    root.join(&walked[index].relative).display()
                )
            })?;
        folder_caps[index] = Some(stored);
    }
    let top = folder_caps[0]
        .take()
        .ok_or_else(|| anyhow!("internal: the top folder was not stored"))?;
    eprintln!(
        "stored {} file(s) in {} folder(s), {} in all{}",
        files.len(),
        walked.len(),
        ByteSize(top.size),
        if skipped > 0 {
            format!("; {skipped} skipped (see above)")
        } else {
            String::new()
        }
    );
    Ok(top.capability)
}

/// Walks `root`: every folder (the top one first, each before its
/// subfolders) and the number of entries skipped.
fn walk(root: &Path) -> anyhow::Result<(Vec<WalkedFolder>, usize)> {
    let mut walked = vec![WalkedFolder {
        relative: String::new(),
        files: Vec::new(),
        folders: Vec::new(),
    }];
    let mut skipped = 0;
    let mut next = 0;
    while next < walked.len() {
        let relative = walked[next].relative.clone();
        let depth = relative.split('/').filter(|part| !part.is_empty()).count();
        let dir = root.join(&relative);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read the folder {}", dir.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read the folder {}", dir.display()))?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = entry.path();
            let skip = |why: &str| eprintln!("skipped {}: {why}", path.display());
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                skip("its name is not UTF-8 text");
                skipped += 1;
                continue;
            };
            if let Err(error) = kith_node::check_folder_entry_name(&name) {
                skip(&error.to_string());
                skipped += 1;
                continue;
            }
            let meta = std::fs::symlink_metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if meta.file_type().is_symlink() {
                skip("it is a symbolic link (kith stores files and folders, not links)");
                skipped += 1;
            } else if meta.is_dir() {
                if depth + 1 > MAX_DEPTH {
                    bail!(
                        "{} is nested more than {MAX_DEPTH} folders deep",
                        path.display()
                    );
                }
                let sub = walked.len();
                let sub_relative = if relative.is_empty() {
                    name.clone()
                } else {
                    format!("{relative}/{name}")
                };
                walked.push(WalkedFolder {
                    relative: sub_relative,
                    files: Vec::new(),
                    folders: Vec::new(),
                });
                walked[next].folders.push((name, sub));
            } else if meta.is_file() {
                walked[next].files.push((name, path));
            } else {
                skip("it is not a regular file or a folder (a device, socket or pipe)");
                skipped += 1;
            }
        }
        next += 1;
    }
    Ok((walked, skipped))
}

/// At most a given number of holders at once: [`Gate::enter`] waits for a
/// free place. (The standard library has no semaphore; a mutex and a
/// condition variable make one in a few lines.)
struct Gate {
    inside: Mutex<usize>,
    left: std::sync::Condvar,
    most: usize,
}

/// A place in a [`Gate`], given back when dropped.
struct GatePlace<'a>(&'a Gate);

impl Gate {
    fn new(most: usize) -> Self {
        Self {
            inside: Mutex::new(0),
            left: std::sync::Condvar::new(),
            most,
        }
    }

    fn enter(&self) -> GatePlace<'_> {
        let mut inside = self.inside.lock().unwrap_or_else(|e| e.into_inner());
        while *inside >= self.most {
            inside = self.left.wait(inside).unwrap_or_else(|e| e.into_inner());
        }
        *inside += 1;
        GatePlace(self)
    }
}

impl Drop for GatePlace<'_> {
    fn drop(&mut self) {
        *self.0.inside.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.left.notify_one();
    }
}

/// Runs `job` for 0..count on `threads` threads; the results in order, or
/// the first error (the others stop taking new work).
fn parallel<T: Send>(
    count: usize,
    threads: usize,
    job: impl Fn(usize) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(count) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    match job(index) {
                        Ok(value) => {
                            results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(value)
                        }
                        Err(error) => {
                            failed.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(error);
                        }
                    }
                }
            });
        }
    });
    if let Some(error) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(error);
    }
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|result| result.ok_or_else(|| anyhow!("internal: a file was not handled")))
        .collect()
}

/// `kith ls CAP[/PATH]`: one line per entry, every level down:
/// kind, size in bytes, and path (a folder's with a trailing `/`),
/// separated by tabs.
pub(crate) fn ls(api: &ApiClient, cap: &str) -> anyhow::Result<Vec<String>> {
    let top: Listing = api.get(&format!("/v1/ls?cap={}", escape(cap.trim())))?;
    let mut lines = Vec::new();
    let mut pending = vec![(String::new(), top)];
    while let Some((prefix, listing)) = pending.pop() {
        let mut below = Vec::new();
        for entry in listing.entries {
            let path = format!("{prefix}{}", entry.name);
            if entry.kind == "folder" {
                lines.push(format!("folder\t{}\t{path}/", entry.size));
                let sub: Listing = api.get(&format!("/v1/ls?cap={}", escape(&entry.capability)))?;
                below.push((format!("{path}/"), sub));
            } else {
                lines.push(format!("{}\t{}\t{path}", entry.kind, entry.size));
            }
        }
        // Depth first, in name order.
        pending.extend(below.into_iter().rev());
    }
    Ok(lines)
}

/// `kith rm FOLDER_CAP`: deletes every file and listing below the folder,
/// and its own listing, from every holder (as `kith rm` of each would).
pub(crate) fn remove(api: &ApiClient, cap: &str) -> anyhow::Result<String> {
    let mut seen = std::collections::HashSet::new();
    let mut caps = Vec::new();
    let mut pending = vec![cap.trim().to_owned()];
    while let Some(folder) = pending.pop() {
        let listing: Listing = api.get(&format!("/v1/ls?cap={}", escape(&folder)))?;
        for entry in listing.entries {
            if entry.kind == "folder" {
                pending.push(entry.capability);
            } else if seen.insert(entry.capability.clone()) {
                caps.push(entry.capability);
            }
        }
        if seen.insert(folder.clone()) {
            caps.push(folder);
        }
    }
    // The top listing first: if this node did
    // not store it, it stored none of the folder, and nothing else is
    // asked. The rest a few at a time.
    let rm = |item: &String| -> anyhow::Result<kith_node::RmReport> {
        api.post(&format!("/v1/rm?cap={}", escape(item)), &())
    };
    let top = cap.trim().to_owned();
    let rest: Vec<String> = caps.iter().filter(|item| **item != top).cloned().collect();
    let first = rm(&top)?;
    if first.refused > 0 && first.dropped == 0 {
        bail!(
            "nothing was deleted: the holders refused, because this node did not store that \
             folder (only the node that put it may delete it)"
        );
    }
    let mut total = first;
    for removed in parallel(rest.len(), PARALLEL_FILES, |index| rm(&rest[index]))? {
        total.dropped += removed.dropped;
        total.not_held += removed.not_held;
        total.refused += removed.refused;
        total.cached += removed.cached;
        total.unreachable += removed.unreachable;
    }
    if total.refused > 0 || total.unreachable > 0 {
        eprintln!(
            "{} share(s) were refused (stored by another node) and {} did not answer",
            total.refused, total.unreachable
        );
    }
    Ok(format!(
        "deleted {} share(s) of {} file(s) and folder listing(s){}",
        total.dropped,
        caps.len(),
        if total.not_held > 0 {
            format!("; {} were already gone", total.not_held)
        } else {
            String::new()
        }
    ))
}

/// `kith get FOLDER_CAP -o DIR`: writes the folder `cap` reads as `DIR`;
/// `cache`: whether the node keeps the files it fetched.
pub(crate) fn get(
    api: &ApiClient,
    cap: &str,
    output: Option<&Path>,
    cache: bool,
) -> anyhow::Result<()> {
    let Some(output) = output.filter(|path| *path != Path::new("-")) else {
        bail!("this capability is a folder, which cannot go to standard output; give -o FOLDER");
    };
    if let Ok(mut entries) = std::fs::read_dir(output)
        && entries.next().is_some()
    {
        bail!(
            "{} already exists and is not empty; give a new folder to -o",
            output.display()
        );
    } else if output.exists() && !output.is_dir() {
        bail!(
            "{} exists and is not a folder; give a new folder to -o",
            output.display()
        );
    }
    let parent = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".kith-get-")
        .suffix(".part")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write to {}", parent.display()))?;
    // Every folder first (listings are small), then the files.
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let mut total = 0u64;
    let mut pending = vec![(temp.path().to_path_buf(), cap.to_owned())];
    let mut folders = 0usize;
    while let Some((dir, folder_cap)) = pending.pop() {
        folders += 1;
        let listing: Listing = api.get(&format!("/v1/ls?cap={}", escape(&folder_cap)))?;
        for entry in listing.entries {
            // The node checked every name when it read the listing; this
            // side checks again before it writes anything.
            kith_node::check_folder_entry_name(&entry.name).map_err(|error| {
                anyhow!("the folder lists a name that cannot be written: {error}")
            })?;
            let path = dir.join(&entry.name);
            if entry.kind == "folder" {
                std::fs::create_dir(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                pending.push((path, entry.capability));
            } else {
                total = total.saturating_add(entry.size);
                files.push((path, entry.capability));
            }
        }
    }
    let progress = Progress::new("fetched", Some(total));
    let fetched = parallel(files.len(), PARALLEL_FILES, |index| {
        let (path, file_cap) = &files[index];
        let mut file =
            File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
        let size = fetch(api, file_cap, cache, &mut file, &progress)?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(size)
    });
    progress.finish(fetched.is_ok());
    let size: u64 = fetched?.into_iter().sum();
    if output.is_dir() {
        // Empty (checked above): the rename replaces it.
        std::fs::remove_dir(output)
            .with_context(|| format!("cannot replace the empty folder {}", output.display()))?;
    }
    let kept = temp.keep();
    std::fs::rename(&kept, output).map_err(|error| {
        let _ = std::fs::remove_dir_all(&kept);
        anyhow!("cannot write {}: {error}", output.display())
    })?;
    eprintln!(
        "wrote {} file(s) in {folders} folder(s), {}, to {}",
        files.len(),
        ByteSize(size),
        output.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_lets_in_at_most_its_number_at_once() {
        let gate = Gate::new(2);
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let entered = parallel(40, 8, |_| {
            let _place = gate.enter();
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::yield_now();
            inside.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
        .map(|done| done.len());
        assert_eq!(entered.ok(), Some(40));
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} were inside at once");
    }
}
