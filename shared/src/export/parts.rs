//! The hand-over between the two halves of a partition's export: the
//! encoder (merge, CSV rows, checksum: CPU work on a blocking thread) and
//! the uploader (store calls on the async side). While one part uploads the
//! next is encoded, and a run exporting several partitions at once keeps
//! that many encoders busy on their own threads.
//!
//! Memory: at most [`PARTS_IN_FLIGHT`] parts per partition. The encoder
//! takes a token before it starts a part and the uploader gives it back
//! once the store has taken the part, so a slow store holds the encoder
//! back instead of letting parts pile up.

use std::sync::mpsc;

use super::error::ExportError;

/// Parts of one partition in memory at once: the one uploading and the one
/// being encoded.
pub const PARTS_IN_FLIGHT: usize = 2;

/// One upload part of the CSV file.
#[derive(Debug)]
pub struct Part {
    pub body: Vec<u8>,
    /// No part follows.
    pub last: bool,
}

/// The encoder's end.
pub struct PartSender {
    parts: tokio::sync::mpsc::Sender<Result<Part, ExportError>>,
    tokens: mpsc::Receiver<()>,
}

/// The uploader's end.
pub struct PartReceiver {
    parts: tokio::sync::mpsc::Receiver<Result<Part, ExportError>>,
    tokens: mpsc::SyncSender<()>,
    started: bool,
    finished: bool,
}

/// A connected pair, with [`PARTS_IN_FLIGHT`] tokens to start with.
pub fn channel() -> (PartSender, PartReceiver) {
    let (parts_tx, parts_rx) = tokio::sync::mpsc::channel(PARTS_IN_FLIGHT);
    let (tokens_tx, tokens_rx) = mpsc::sync_channel(PARTS_IN_FLIGHT);
    for _ in 0..PARTS_IN_FLIGHT {
        tokens_tx
            .try_send(())
            .expect("the token channel holds PARTS_IN_FLIGHT tokens");
    }
    let sender = PartSender {
        parts: parts_tx,
        tokens: tokens_rx,
    };
    let receiver = PartReceiver {
        parts: parts_rx,
        tokens: tokens_tx,
        started: false,
        finished: false,
    };
    (sender, receiver)
}

impl PartSender {
    /// Blocks until a new part may be encoded; `false` once the uploader
    /// has gone (it failed or finished), when encoding should stop.
    pub fn wait_for_room(&self) -> bool {
        self.tokens.recv().is_ok()
    }

    /// Hands over a part or the error that ends the file; `false` once the
    /// uploader has gone. Call from a blocking thread, not async code.
    pub fn send(&self, part: Result<Part, ExportError>) -> bool {
        self.parts.blocking_send(part).is_ok()
    }
}

impl PartReceiver {
    /// The next part; `None` when the file is complete, or at once for a
    /// file without rows (the encoder sent nothing). An encoder that stops
    /// after a part that was not its last (it panicked) is an error, never
    /// a shorter file; one that panics before its first part is caught by
    /// joining its thread.
    pub async fn next(&mut self) -> Result<Option<Part>, ExportError> {
        if self.finished {
            return Ok(None);
        }
        let received = self.parts.recv().await;
        let started = std::mem::replace(&mut self.started, true);
        self.finished = true;
        match received {
            Some(Ok(part)) => {
                self.finished = part.last;
                Ok(Some(part))
            }
            Some(Err(error)) => Err(error),
            None if started => Err(ExportError::EncoderStopped),
            None => Ok(None),
        }
    }

    /// The store has taken a part: the encoder may start another.
    pub fn uploaded(&self) {
        // At most PARTS_IN_FLIGHT tokens exist, so this never finds the
        // channel full; a gone encoder needs none.
        let _ = self.tokens.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u8, last: bool) -> Result<Part, ExportError> {
        Ok(Part {
            body: vec![n],
            last,
        })
    }

    #[tokio::test]
    async fn the_encoder_waits_for_the_uploader_beyond_the_parts_in_flight() {
        let (tx, mut rx) = channel();
        let encoder = tokio::task::spawn_blocking(move || {
            let mut sent = 0u8;
            while sent < 5 && tx.wait_for_room() {
                sent += 1;
                assert!(tx.send(part(sent, sent == 5)));
            }
            sent
        });
        // Without uploads, the encoder stops at PARTS_IN_FLIGHT parts.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(rx.parts.len(), PARTS_IN_FLIGHT);
        let mut got = Vec::new();
        while let Some(p) = rx.next().await.unwrap() {
            got.push(p.body[0]);
            rx.uploaded();
        }
        assert_eq!(got, [1, 2, 3, 4, 5]);
        assert_eq!(encoder.await.unwrap(), 5);
    }

    #[tokio::test]
    async fn an_encoder_gone_before_its_last_part_is_an_error() {
        let (tx, mut rx) = channel();
        tokio::task::spawn_blocking(move || tx.send(part(1, false)))
            .await
            .unwrap();
        assert_eq!(rx.next().await.unwrap().unwrap().body, [1]);
        assert!(matches!(rx.next().await, Err(ExportError::EncoderStopped)));
    }

    #[tokio::test]
    async fn no_part_at_all_is_an_empty_file() {
        let (tx, mut rx) = channel();
        drop(tx);
        assert!(rx.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_gone_uploader_stops_the_encoder() {
        let (tx, rx) = channel();
        drop(rx);
        let stopped = tokio::task::spawn_blocking(move || {
            // The two starting tokens remain, then there is no room.
            (tx.wait_for_room(), tx.send(part(1, false)))
        });
        assert_eq!(stopped.await.unwrap(), (true, false));
    }
}
