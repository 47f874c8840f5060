//! Work sharing on all cores natively and in turn on the browser's single thread: the only
//! place in the crate that spawns threads.

#[cfg(not(target_arch = "wasm32"))]
use std::sync::Mutex;

/// Worker threads to use natively: every core (the browser runs everything in turn). Asked
/// once: on Linux the answer reads the process's cgroup files, and every parallel call needs it.
#[cfg(not(target_arch = "wasm32"))]
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How many threads [`fold_tasks`] and [`for_each_chunk_mut`] run at most: every core natively,
/// one in the browser.
pub fn workers() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    {
        threads()
    }
    #[cfg(target_arch = "wasm32")]
    {
        1
    }
}

/// Calls `f(chunk_index, chunk)` on each `chunk_len`-long chunk of `data`; threads take the next
/// free chunk, so uneven chunks do not leave a core idle.
pub fn for_each_chunk_mut<T: Send>(
    data: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk_len = chunk_len.max(1);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let chunks = data.len().div_ceil(chunk_len);
        let workers = threads().min(chunks);
        if workers > 1 {
            let queue = Mutex::new(data.chunks_mut(chunk_len).enumerate());
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(|| loop {
                        let next = queue.lock().map(|mut q| q.next());
                        match next {
                            Ok(Some((i, chunk))) => f(i, chunk),
                            _ => break,
                        }
                    });
                }
            });
            return;
        }
    }
    for (i, chunk) in data.chunks_mut(chunk_len).enumerate() {
        f(i, chunk);
    }
}

/// Runs `work(state, task)` for every task in `0..tasks`, each thread on its own state made by
/// `init`; returns the states (one per thread that ran) for the caller to merge.
pub fn fold_tasks<S: Send>(
    tasks: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize) + Sync,
) -> Vec<S> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let workers = threads().min(tasks);
        if workers > 1 {
            let next = std::sync::atomic::AtomicUsize::new(0);
            return std::thread::scope(|s| {
                let handles: Vec<_> = (0..workers)
                    .map(|_| {
                        s.spawn(|| {
                            let mut state = init();
                            loop {
                                let task = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                if task >= tasks {
                                    break state;
                                }
                                work(&mut state, task);
                            }
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            });
        }
    }
    let mut state = init();
    (0..tasks).for_each(|t| work(&mut state, t));
    vec![state]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_visited_once_with_its_index() {
        let mut data: Vec<usize> = vec![0; 1003];
        for_each_chunk_mut(&mut data, 10, |i, chunk| {
            chunk.iter_mut().for_each(|v| *v += i + 1)
        });
        for (j, v) in data.iter().enumerate() {
            assert_eq!(*v, j / 10 + 1);
        }
    }

    #[test]
    fn every_task_runs_once_across_the_states() {
        let states = fold_tasks(257, Vec::new, |s: &mut Vec<usize>, t| s.push(t));
        let mut all: Vec<usize> = states.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..257).collect::<Vec<_>>());
        assert_eq!(fold_tasks(0, || 1, |_, _| {}).len(), 1);
    }
}
