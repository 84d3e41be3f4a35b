//! Structure-aware fuzzing of the friends protocols (`/kith/direct/1.0.0`
//! and `/kith/mailbox/1.0.0`) as a receiver sees them: a sequence of frames
//! (any tag, any payload, a header length that may lie), delivered by a
//! stream that hands out a few bytes per read, read frame by frame with the
//! node's `read_frame` and a reused buffer, each payload then read the way
//! the receiver of its tag reads it (`kith_node::fuzzing::friends_frame`:
//! a letter is opened, an end frame taken as a 32-byte hash, a deposit
//! split into mailbox, expiry and sealed letter, drop ids and mail
//! decoded).
//!
//! Asserts: no panic (an END frame of 5 bytes reaching the receiver — the
//! bug fixed by `min_payload` — fails here at once); every frame
//! `read_frame` returns is within its tag's minimum and maximum; reading
//! stops at the first refused frame, as the receivers drop the stream; no
//! frame is read without its 5-byte header (a lying length may split one
//! built frame into several read ones: that is allowed, and was the first
//! "crash" this target found — in its own assertion, not in kith).
#![no_main]

#[path = "../common.rs"]
mod common;

use arbitrary::Arbitrary;
use common::{Frame, Trickle, frames_to_bytes, runtime};
use kith_node::protocols::letter_frames::tag;
use kith_node::fuzzing::{FrameOutcome, friends_frame};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Tag {
    Letter,
    Data,
    End,
    Ready,
    Refused,
    Delivered,
    Deposit,
    Collect,
    Drop,
    Held,
    MailRefused,
    Mail,
    Dropped,
    Other(u8),
}

fn tag_byte(t: Tag) -> u8 {
    match t {
        Tag::Letter => tag::LETTER,
        Tag::Data => tag::DATA,
        Tag::End => tag::END,
        Tag::Ready => tag::READY,
        Tag::Refused => tag::REFUSED,
        Tag::Delivered => tag::DELIVERED,
        Tag::Deposit => tag::DEPOSIT,
        Tag::Collect => tag::COLLECT,
        Tag::Drop => tag::DROP,
        Tag::Held => tag::HELD,
        Tag::MailRefused => tag::MAIL_REFUSED,
        Tag::Mail => tag::MAIL,
        Tag::Dropped => tag::DROPPED,
        Tag::Other(byte) => byte,
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Bytes per read the stream hands out (0 counts as 1).
    step: u8,
    frames: Vec<Frame<Tag>>,
}

fuzz_target!(|input: Input| {
    let bytes = frames_to_bytes(&input.frames, tag_byte);
    let mut stream = Trickle {
        bytes: &bytes,
        step: usize::from(input.step),
    };
    runtime().block_on(async {
        let mut buffer = Vec::new();
        let mut read = 0;
        while let FrameOutcome::Frame(_) = friends_frame(&mut stream, &mut buffer).await {
            read += 1;
            // A header that lies about its length makes the reader take
            // payload bytes for further frames, so more frames may come
            // out than were built; but each costs its 5-byte header.
            assert!(read * 5 <= bytes.len(), "a frame was read from under 5 bytes");
        }
    });
});
