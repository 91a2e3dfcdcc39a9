//! Bounded capture of a child's output. A pipe is always read to its end, so git never
//! blocks on a full pipe, but only so many bytes are kept: the head for stdout (what a
//! caller parses), the head and the tail for stderr (git puts the reason for a failure
//! last, after any amount of warnings).

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug)]
pub(super) struct Capture {
    head: Vec<u8>,
    head_limit: usize,
    tail: VecDeque<u8>,
    tail_limit: usize,
    total: u64,
}

impl Capture {
    /// Keeps the first `limit` bytes.
    pub(super) fn head(limit: usize) -> Self {
        Self::split(limit, 0)
    }

    /// Keeps the first half and the last half of `limit` bytes.
    pub(super) fn head_and_tail(limit: usize) -> Self {
        Self::split(limit - limit / 2, limit / 2)
    }

    fn split(head_limit: usize, tail_limit: usize) -> Self {
        Self {
            head: Vec::new(),
            head_limit,
            tail: VecDeque::new(),
            tail_limit,
            total: 0,
        }
    }

    pub(super) fn push(&mut self, mut chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let room = self.head_limit - self.head.len();
        let to_head = room.min(chunk.len());
        self.head.extend_from_slice(&chunk[..to_head]);
        chunk = &chunk[to_head..];
        if self.tail_limit == 0 || chunk.is_empty() {
            return;
        }
        if chunk.len() >= self.tail_limit {
            self.tail.clear();
            self.tail.extend(&chunk[chunk.len() - self.tail_limit..]);
        } else {
            let overflow = (self.tail.len() + chunk.len()).saturating_sub(self.tail_limit);
            self.tail.drain(..overflow);
            self.tail.extend(chunk);
        }
    }

    /// Whether any byte was dropped.
    pub(super) fn truncated(&self) -> bool {
        self.total > (self.head.len() + self.tail.len()) as u64
    }

    /// The kept bytes; where bytes were dropped between head and tail, a marker says how
    /// many.
    pub(super) fn into_bytes(self) -> Vec<u8> {
        let dropped = self.total - (self.head.len() + self.tail.len()) as u64;
        let mut out = self.head;
        if !self.tail.is_empty() {
            if dropped > 0 {
                out.extend_from_slice(format!("\n[... {dropped} bytes omitted ...]\n").as_bytes());
            }
            out.extend(self.tail);
        }
        out
    }
}

/// Reads `pipe` to its end (or its first error) into `capture`.
pub(super) async fn drain<R: AsyncRead + Unpin>(pipe: Option<R>, capture: &mut Capture) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => capture.push(&buf[..n]),
        }
    }
}

/// Writes `data` to the child's stdin and closes it. A child that exits without reading
/// it all is not an error here (its exit status says what happened).
pub(super) async fn feed<W: AsyncWrite + Unpin>(pipe: Option<W>, data: Option<Vec<u8>>) {
    if let (Some(mut pipe), Some(data)) = (pipe, data) {
        let _ = pipe.write_all(&data).await;
        let _ = pipe.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_head_of_stdout() {
        let mut c = Capture::head(5);
        c.push(b"abc");
        assert!(!c.truncated());
        c.push(b"defgh");
        assert!(c.truncated());
        assert_eq!(c.into_bytes(), b"abcde");
    }

    #[test]
    fn keeps_head_and_tail_of_stderr() {
        let mut c = Capture::head_and_tail(8);
        for chunk in [&b"0123"[..], b"45", b"6789", b"abcdef"] {
            c.push(chunk);
        }
        assert!(c.truncated());
        assert_eq!(
            String::from_utf8(c.into_bytes()).unwrap(),
            "0123\n[... 8 bytes omitted ...]\ncdef"
        );
        let mut small = Capture::head_and_tail(8);
        small.push(b"012345");
        assert!(!small.truncated());
        assert_eq!(small.into_bytes(), b"012345");
    }

    #[test]
    fn a_zero_limit_keeps_nothing() {
        let mut c = Capture::head_and_tail(0);
        c.push(b"x");
        assert!(c.truncated());
        assert!(c.into_bytes().is_empty());
    }
}
