//! A resume's replay once its first rows are in: the first page at once, the rest page by page
//! as the socket reads them, then `synced`; the same for the room and for its shards, which
//! differ only in where the rows come from.

use std::future::Future;

use worker::WebSocket;

use super::fanout;
use crate::error::{RelayError, RelayResult};
use crate::paging::SeqRange;
use crate::protocol;
use crate::replay::{self, Replay};
use crate::room::MAX_REPLAY_MESSAGES;

/// Sends the page the replay holds now. A replay that ends with it gets `synced` here and
/// `None` comes back; otherwise the socket's other frames are held back until [`pump`] ends it.
pub fn send_first_page(ws: &WebSocket, mut replay: Replay) -> Option<Replay> {
    if let Some(page) = replay.next_page() {
        fanout::send_replay_page(ws, &page);
    }
    if replay.is_done() {
        fanout::end_replay(ws, &protocol::synced_frame(replay.sent()));
        return None;
    }
    fanout::hold(ws, replay::MAX_REPLAY_MS);
    Some(replay)
}

/// Sends the rest of a replay page by page, each once the socket has taken most of the one
/// before, with rows from `fetch`, then `synced` and the frames held meanwhile. A socket that
/// closes stops it; one that does not drain, or whose replay outlasts
/// [`replay::MAX_REPLAY_MS`], is closed with 4010 and resumes from what it got.
pub async fn pump<F, Fut>(ws: &WebSocket, mut replay: Replay, mut fetch: F) -> RelayResult<()>
where
    F: FnMut(SeqRange) -> Fut,
    Fut: Future<Output = RelayResult<Vec<(u64, String)>>>,
{
    let deadline = super::now_ms() + i64::from(replay::MAX_REPLAY_MS);
    // Each round but the last sends at least one message: the replay's bound bounds them.
    for _ in 0..=MAX_REPLAY_MESSAGES {
        if !fanout::drained(ws, replay::LOW_WATER_BYTES, replay::MAX_DRAIN_WAIT_MS).await {
            return Ok(());
        }
        if super::now_ms() > deadline {
            fanout::close_slow_consumer(ws);
            return Ok(());
        }
        if replay.is_done() {
            fanout::end_replay(ws, &protocol::synced_frame(replay.sent()));
            return Ok(());
        }
        if let Some(range) = replay.next_fetch() {
            replay.add_rows(fetch(range).await?)?;
        }
        let Some(page) = replay.next_page() else {
            return Err(RelayError::internal());
        };
        if !fanout::send_replay_page(ws, &page) {
            return Ok(());
        }
    }
    Err(RelayError::internal())
}
