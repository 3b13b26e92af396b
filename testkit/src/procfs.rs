//! What this process holds, read from `/proc`, and the leak snapshot compared before and
//! after a test (the catalogue's Appendix B: fds, threads, children, zombies, `/dev/shm`,
//! memfd and `/dev/shm` mappings).
//!
//! [`Snapshot`] is a superset of what `proclife check` compares after every sequence (open
//! fds and children), so the checker can use it too.

use std::collections::{BTreeMap, BTreeSet};

/// The open fds of this process and what they point at (the fd that reads the directory
/// is left out).
pub fn fd_snapshot() -> BTreeMap<i32, String> {
    let mut fds = BTreeMap::new();
    let me = format!("/proc/{}/fd", std::process::id());
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for entry in dir.flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let target = std::fs::read_link(entry.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            // The directory being read shows up as an fd of its own.
            if target == me || target.is_empty() {
                continue;
            }
            fds.insert(fd, target);
        }
    }
    fds
}

/// The state letter and parent pid of process `pid` from `/proc/<pid>/stat`.
pub fn stat(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; the fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The state letter of process `pid` (`R`, `S`, `T`, `Z`, ...), if it exists.
pub fn proc_state(pid: i32) -> Option<char> {
    stat(pid).map(|(state, _)| state)
}

/// Every process whose parent is `parent`, with its state letter, in pid order.
pub fn children_of(parent: i32) -> Vec<(i32, char)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some((state, ppid)) = stat(pid)
            && ppid == parent
        {
            found.push((pid, state));
        }
    }
    found.sort_unstable();
    found
}

/// Pids of this process's children that are zombies.
pub fn zombies() -> Vec<i32> {
    children_of(std::process::id() as i32)
        .into_iter()
        .filter(|&(_, state)| state == 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// Pids of this process's live (or zombie) children, from `/proc/self/task/*/children`.
pub fn children() -> Vec<i32> {
    let mut pids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                pids.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    pids
}

/// The number of threads of this process: `num_threads` of `/proc/self/stat` (field 20),
/// the count the fork start method checks before it forks; 0 when it cannot be read.
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|line| {
            // The command name (field 2) may hold spaces and parentheses: count from the
            // last ')', after which field 3 starts.
            let rest = &line[line.rfind(')')? + 1..];
            rest.split_whitespace().nth(20 - 3)?.parse().ok()
        })
        .unwrap_or(0)
}

/// The names (`comm`) of this process's threads other than the calling one, for a failure
/// message that says which thread was left.
pub fn other_thread_names() -> Vec<String> {
    let me = nix::unistd::gettid().as_raw().to_string();
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|entry| entry.ok())
                .filter(|entry| entry.file_name().to_string_lossy() != me)
                .map(|entry| {
                    let comm = std::fs::read_to_string(entry.path().join("comm"));
                    let name = entry.file_name().to_string_lossy().into_owned();
                    format!("{name} ({})", comm.unwrap_or_default().trim_end())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Prefixes of the names CPython's `multiprocessing` creates in `/dev/shm` (POSIX
/// semaphores and `SharedMemory`). The benchmarks run CPython beside the runtime on the
/// same machine, and other programs may too; proclife names nothing in `/dev/shm` (memfd
/// only), so names with these prefixes are another program's and are not counted.
pub const FOREIGN_SHM_PREFIXES: &[&str] = &["sem.mp-", "psm_", "wnsm_"];

/// Whether `name` is the temporary file glibc's `sem_open(O_CREAT)` makes from the
/// template `sem.XXXXXX` and links to the semaphore's name a moment later: any program's
/// named semaphore (CPython's `sem.mp-` ones included) passes through one.
fn glibc_sem_temporary(name: &str) -> bool {
    name.strip_prefix("sem.")
        .is_some_and(|rest| rest.len() == 6 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The names in `/dev/shm`, without those of [`FOREIGN_SHM_PREFIXES`] and glibc's
/// temporary semaphore files.
pub fn dev_shm() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !FOREIGN_SHM_PREFIXES.iter().any(|p| name.starts_with(p)))
                .filter(|name| !glibc_sem_temporary(name))
                .collect()
        })
        .unwrap_or_default()
}

/// The lines of `/proc/self/maps` that map a memfd or a file in `/dev/shm`.
pub fn shared_maps() -> Vec<String> {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| {
            m.lines()
                .filter(|l| l.contains("/memfd:") || l.contains("/dev/shm/"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The number of lines of `/proc/self/maps`.
pub fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}

/// The socket inodes process `pid` holds open (`socket:[N]` fd targets).
pub fn socket_inodes_of(pid: i32) -> BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| inode_of_target(&std::fs::read_link(e.path()).ok()?))
        .collect()
}

/// The inode of socket `fd` of this process, if it is a socket.
pub fn socket_inode(fd: i32) -> Option<u64> {
    inode_of_target(&std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?)
}

fn inode_of_target(target: &std::path::Path) -> Option<u64> {
    let t = target.to_string_lossy();
    t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// One row of `/proc/net/unix`: the socket's inode and its path (`@name` for an abstract
/// name, empty for an unnamed socket).
pub fn unix_sockets() -> Vec<(u64, String)> {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let inode = fields.get(6)?.parse().ok()?;
            Some((inode, fields.get(7).copied().unwrap_or("").to_owned()))
        })
        .collect()
}

/// What a test may not leave behind, taken before it and compared after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `fd -> target`.
    pub fds: BTreeMap<i32, String>,
    /// Names in `/dev/shm`.
    pub dev_shm: BTreeSet<String>,
    /// Memfd and `/dev/shm` mappings.
    pub shared_maps: usize,
    /// Threads of this process.
    pub threads: usize,
}

impl Snapshot {
    /// The state now.
    pub fn take() -> Snapshot {
        Snapshot {
            fds: fd_snapshot(),
            dev_shm: dev_shm(),
            shared_maps: shared_maps().len(),
            threads: thread_count(),
        }
    }

    /// Describes every leak since `self`, one sentence each: fds opened or re-pointed,
    /// new `/dev/shm` names, more shared mappings or threads, and any child (alive or
    /// zombie) at all.
    ///
    /// `/dev/shm` is shared by every process of the machine, so only names created by this
    /// process's user since the snapshot and still present count, and only when
    /// `with_dev_shm`.
    ///
    /// # Errors
    ///
    /// The sentences, joined by "; ".
    pub fn check(&self, with_dev_shm: bool) -> Result<(), String> {
        let now = Snapshot::take();
        let mut problems = Vec::new();
        let opened: Vec<String> = now
            .fds
            .iter()
            .filter(|(fd, target)| self.fds.get(fd) != Some(target))
            .map(|(fd, target)| format!("{fd} -> {target}"))
            .collect();
        if !opened.is_empty() {
            problems.push(format!(
                "file descriptors left open: {opened:?} (before: {:?})",
                self.fds
            ));
        }
        if with_dev_shm {
            let names: Vec<&String> = now.dev_shm.difference(&self.dev_shm).collect();
            if !names.is_empty() {
                problems.push(format!("names left in /dev/shm: {names:?}"));
            }
        }
        if now.shared_maps > self.shared_maps {
            problems.push(format!(
                "shared mappings left: {} now, {} before",
                now.shared_maps, self.shared_maps
            ));
        }
        if now.threads > self.threads {
            problems.push(format!(
                "threads left: {} now, {} before",
                now.threads, self.threads
            ));
        }
        let children = children_of(std::process::id() as i32);
        if !children.is_empty() {
            problems.push(format!("children left (pid, state): {children:?}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// The CPU time process `pid` has used, with that of its reaped children, in clock ticks
/// (fields 14 to 17 of `/proc/<pid>/stat`): a measure of progress that advances while the
/// process works, however slowly a busy machine runs it.
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) is the first after ')': fields 14..=17 are at 11..=14 here.
    let ticks = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(ticks)
}

unsafe extern "C" {
    /// glibc's `__libc_single_threaded` (`<sys/single_threaded.h>`, glibc 2.32).
    static __libc_single_threaded: std::ffi::c_char;
}

/// Whether glibc knows that this process has only ever had one thread
/// (`__libc_single_threaded` non-zero): false once any thread was created, even after it
/// ended, and in the fork child of a process that had one. Not read from `/proc`, but it
/// says which thread check the fork start method makes (decision 0032).
pub fn never_threaded() -> bool {
    // SAFETY: a `char` that glibc exports for reading; glibc writes it only on the thread
    // that creates the first other thread, so a read that sees it non-zero races with no
    // write, and a read that sees zero is only conservative.
    unsafe { std::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
}
