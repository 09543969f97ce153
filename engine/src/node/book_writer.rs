//! The peer-book writer: a thread of the control side that writes the
//! books the cores hand it (atomically: temp file, fsync, rename, fsync of
//! the directory), so no core ever waits for a disk. A core hands a book
//! over with a non-blocking [`BookWriter::submit`]; when the writer is
//! behind (its queue full) the save is refused and the core keeps its book
//! dirty for the next interval. A core's last save at shutdown goes to
//! room the queue keeps for it ([`BookWriter::submit_final`]), so it is
//! neither refused nor waited for; the node joins the writer after the
//! cores, so that save is on disk before the process ends.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use pc_net::peer_book::BookSave;
use pc_node::telemetry::{Event, PeerBookError};

/// Saves queued for the writer at most.
pub const BOOK_QUEUE: usize = 8;

/// The handle cores submit saves through (cloned per core).
#[derive(Clone)]
pub struct BookWriter {
    queue: Sender<(usize, BookSave)>,
}

/// Room the queue keeps beyond [`BOOK_QUEUE`] for the cores' final saves:
/// one per core, and as much again for periodic saves of other cores that
/// raced past the [`BOOK_QUEUE`] check.
pub const FINAL_SAVE_ROOM_PER_CORE: usize = 2;

impl BookWriter {
    /// Starts the writer thread; `write` does the writing (the product's is
    /// [`BookSave::write`]). The thread ends when every handle is dropped.
    pub fn spawn(
        cores: usize,
        write: impl Fn(&BookSave) -> Result<(), String> + Send + 'static,
    ) -> (BookWriter, std::thread::JoinHandle<()>) {
        let capacity = BOOK_QUEUE + FINAL_SAVE_ROOM_PER_CORE * cores;
        let (queue, saves): (_, Receiver<(usize, BookSave)>) = bounded(capacity);
        let thread = std::thread::Builder::new()
            .name("pc-book-writer".into())
            .spawn(move || {
                for (core, save) in saves {
                    if let Err(error) = write(&save) {
                        crate::logging::emit(&Event::PeerBookError(PeerBookError { core, error }));
                    }
                }
            })
            .expect("spawn the peer-book writer");
        (BookWriter { queue }, thread)
    }

    /// The product's writer.
    pub fn spawn_product(cores: usize) -> (BookWriter, std::thread::JoinHandle<()>) {
        Self::spawn(cores, |save| save.write().map_err(|e| e.to_string()))
    }

    /// Hands `save` of `core` to the writer without waiting; false if the
    /// writer is behind (or gone) and the save was not taken.
    pub fn submit(&self, core: usize, save: BookSave) -> bool {
        if self.queue.len() >= BOOK_QUEUE {
            return false;
        }
        match self.queue.try_send((core, save)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Hands a core's last save (at shutdown) to the writer without
    /// waiting, into the room kept for it; false only if the writer is
    /// gone.
    pub fn submit_final(&self, core: usize, save: BookSave) -> bool {
        self.queue.try_send((core, save)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::{Arc, Barrier};

    #[test]
    fn a_stalled_writer_never_blocks_the_core_that_submits() {
        // The writer's disk hangs until the test releases it: every submit
        // must still return at once (a blocking one would deadlock here,
        // as the release comes only after the submissions).
        let release = Arc::new(Barrier::new(2));
        let held = release.clone();
        let (writer, thread) = BookWriter::spawn(1, move |_| {
            held.wait();
            Ok(())
        });
        let save = BookSave {
            path: PathBuf::from("peers-core-0.book"),
            text: b"x".to_vec(),
        };
        let taken = (0..100).filter(|_| writer.submit(0, save.clone())).count();
        // One is being written (stalled), BOOK_QUEUE wait; the rest are
        // refused instead of waited for.
        assert!(taken <= BOOK_QUEUE + 1, "{taken} taken");
        assert!(taken >= BOOK_QUEUE, "{taken} taken");
        // The core's final save at shutdown is taken however far behind
        // the writer is, without waiting.
        assert!(writer.submit_final(0, save.clone()), "the final save");
        for _ in 0..=taken {
            release.wait();
        }
        drop(writer);
        thread.join().unwrap();
    }

    #[test]
    fn a_stalled_writer_does_not_delay_the_cores_timers() {
        // The writer's disk hangs for as long as the core runs: a core
        // executor (the product's runtime, one pinned executor with the
        // park guard) hands a save to it before each of 50 one-millisecond
        // timers and its final save after them. Every timer fires while
        // not one save was written; a submit that waited for the writer
        // would hang the core at its second save, and the test with it.
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;
        let (release, stalled) = crossbeam_channel::bounded::<()>(0);
        let written = Arc::new(AtomicUsize::new(0));
        let count = written.clone();
        let (writer, thread) = BookWriter::spawn(1, move |_| {
            let _ = stalled.recv();
            count.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let save = BookSave {
            path: PathBuf::from("peers-core-0.book"),
            text: b"x".to_vec(),
        };
        let sizing =
            crate::runtime::host::executor_sizing(crate::runtime::host::memlock_limit_bytes(), 1);
        let core_writer = writer.clone();
        let core_save = save.clone();
        let (handle, _nudge) =
            crate::runtime::spawn_core("book-test", 0, 0, sizing, move || async move {
                let mut fired = 0u32;
                for _ in 0..50 {
                    let _ = core_writer.submit(0, core_save.clone());
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                    fired += 1;
                }
                let taken = core_writer.submit_final(0, core_save);
                (fired, taken)
            })
            .unwrap();
        let (fired, final_taken) = handle.join().unwrap();
        assert_eq!(fired, 50, "every timer of the core fired");
        assert!(final_taken, "the final save was taken");
        assert_eq!(
            written.load(Ordering::SeqCst),
            0,
            "the writer wrote nothing while the core ran"
        );
        drop(writer);
        // Release the writer for every queued save; it ends once the
        // queue is drained and every handle is gone.
        while release.send_timeout((), Duration::from_secs(2)).is_ok() {}
        thread.join().unwrap();
        assert!(written.load(Ordering::SeqCst) >= BOOK_QUEUE);
    }
}
