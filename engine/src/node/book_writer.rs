//! The peer-book writer: a thread of the control side that writes the
//! books the cores hand it (atomically: temp file, fsync, rename, fsync of
//! the directory), so no core ever waits for a disk. A core hands a book
//! over with a non-blocking [`BookWriter::submit`]; when the writer is
//! behind (its queue full) the save is refused and the core keeps its book
//! dirty for the next interval.

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

impl BookWriter {
    /// Starts the writer thread; `write` does the writing (the product's is
    /// [`BookSave::write`]). The thread ends when every handle is dropped.
    pub fn spawn(
        write: impl Fn(&BookSave) -> Result<(), String> + Send + 'static,
    ) -> (BookWriter, std::thread::JoinHandle<()>) {
        let (queue, saves): (_, Receiver<(usize, BookSave)>) = bounded(BOOK_QUEUE);
        let thread = std::thread::Builder::new()
            .name("pc-book-writer".into())
            .spawn(move || {
                for (core, save) in saves {
                    if let Err(error) = write(&save) {
                        eprintln!(
                            "{}",
                            Event::PeerBookError(PeerBookError { core, error }).to_line()
                        );
                    }
                }
            })
            .expect("spawn the peer-book writer");
        (BookWriter { queue }, thread)
    }

    /// The product's writer.
    pub fn spawn_product() -> (BookWriter, std::thread::JoinHandle<()>) {
        Self::spawn(|save| save.write().map_err(|e| e.to_string()))
    }

    /// Hands `save` of `core` to the writer without waiting; false if the
    /// writer is behind (or gone) and the save was not taken.
    pub fn submit(&self, core: usize, save: BookSave) -> bool {
        match self.queue.try_send((core, save)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
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
        let (writer, thread) = BookWriter::spawn(move |_| {
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
        for _ in 0..taken {
            release.wait();
        }
        drop(writer);
        thread.join().unwrap();
    }
}
