// Fan-out of a room's frames to its sockets, next to the sockets: the Rust side (src/runtime/
// fanout.rs) hands a frame over once and the loops over sockets run here.
//
// Sockets that opted into batched delivery (tag `batch`) get the frames of one turn of the
// room's event loop coalesced into one WebSocket message, a JSON array of the frames in order;
// the others (tag `plain`) get each frame alone. Presence frames wait a little for every
// socket, so that a connection storm costs each socket a few sends in one turn instead of one
// send per join.
//
// Why a timer: the runtime delivers the frames that are already waiting for the room before it
// fires a zero-delay timer, so the frames published in one burst leave together. Presence
// frames may wait longer (the caller's delay), for plain sockets too; whatever leaves first, to
// either kind, takes all earlier frames. Plain sockets get the waiting ones each alone, all in
// one turn: the runtime's per-send cost is mostly starting a socket's output pump, once per
// turn, not once per frame.
// Batching must cost a quiet room nothing: a frame that finds nothing queued goes to the
// batched sockets of a small room at once, alone, unless it is part of a burst: the room's
// BURST_FRAMES frames before it all came within `quietMs` (20 ms). Only a burst's frames wait for
// the timer. (In a room shared by a busy isolate, the timer fires behind every other room's
// events: tens of milliseconds at the tail.) A burst is told by several frames, not by the gap
// to the previous one: in chat traffic (50 rooms of 10 at 20 frames a second each) a third of
// the frames came within 20 ms of the one before by chance, and each of those waited for the
// timer (p90 49 ms batched against 19 ms plain); four frames within 20 ms at that rate happen
// to fewer than one frame in a thousand. The rule is measured between frames, not from the
// last send: a busy room's own broadcasts take milliseconds, so "2 ms since the last send" held
// between most frames of a large fan-out and sent them one by one. And only small rooms (at
// most QUIET_MAX_SOCKETS batched sockets) send at once: a frame alone costs a send per socket,
// and in a room of a thousand a broadcast itself can take 20 ms, so the gap rule alone still
// turned a large fan-out into one send per frame (43 000 instead of 279 000 deliveries a
// second to 1000 batched receivers).
// The queue is bounded: past MAX_ENTRIES frames or MAX_BYTES it is flushed at once. A socket
// accepted while frames wait must not get the frames from before its welcome: the queue notes
// where it began.
//
// Every frame to a socket ends in one function, which closes a slow consumer (4010) instead of
// queueing more for it, and which holds a resuming socket's frames back until its paced replay
// has ended (see "Slow consumers" below).

import { LINK } from './shard_link.mjs';

const BATCH = 'batch';
const PLAIN = 'plain';
const MAX_ENTRIES = 256;
const MAX_BYTES = 1 << 20;
const queues = new WeakMap();
// When each room's last BURST_FRAMES frames for its batched sockets came (ms, oldest first), and
// the span within which that many make a burst (0: every frame is; the queue's tests use that).
const recentBatchFrames = new WeakMap();
const batching = { quietMs: 20 };
const BURST_FRAMES = 4;
const QUIET_MAX_SOCKETS = 32;

/** Sets the span within which BURST_FRAMES frames make the next one part of a burst. */
export function configureQuietSends(quietMs) {
  batching.quietMs = quietMs;
}

function isQuiet(state, now) {
  let times = recentBatchFrames.get(state);
  if (times === undefined) {
    times = [];
    recentBatchFrames.set(state, times);
  }
  const burst = times.length === BURST_FRAMES && now - times[0] < batching.quietMs;
  times.push(now);
  if (times.length > BURST_FRAMES) times.shift();
  return batching.quietMs > 0 && !burst;
}
// Whether a socket takes batches, looked up once per socket object (tags never change).
const batchedSockets = new WeakMap();

// Per room: whether a socket that takes batches was accepted, and whether sockets accepted
// before sockets were tagged either way are open (those rooms scan every socket per frame).
const roomKinds = new WeakMap();

function kindsOf(state) {
  let kinds = roomKinds.get(state);
  if (kinds === undefined) {
    const batched = state.getWebSockets(BATCH).length;
    const plain = state.getWebSockets(PLAIN).length;
    // Shard links (shard_link.mjs) are no viewers: they get the room's frames in their batches.
    const links = state.getWebSockets(LINK).length;
    kinds = { batched: batched > 0, untagged: state.getWebSockets().length > batched + plain + links };
    roomKinds.set(state, kinds);
  }
  return kinds;
}

function takesBatches(state, ws) {
  let batched = batchedSockets.get(ws);
  if (batched === undefined) {
    batched = state.getTags(ws).includes(BATCH);
    batchedSockets.set(ws, batched);
  }
  return batched;
}

// Slow consumers. A socket that does not read keeps every frame sent to it in the runtime's
// memory (`bufferedAmount`), without end. Every frame to a socket goes through `send`: a frame
// that finds the socket's unsent output above the bound closes it instead (4010 "slow
// consumer": the client reconnects with `since` and resumes), once, and the socket gets nothing
// more. The check is made before the send, so that a single message larger than the bound (a
// batch leaves at MAX_BYTES) never closes a socket that keeps up; a stuck socket pins at most
// the bound plus one message. The room configures the bound from MAX_SOCKET_BUFFER_BYTES.
const OPEN = 1;
const slowConsumer = { maxBufferedBytes: 2 << 20, code: 4010, reason: 'slow consumer' };
const cutOff = new WeakSet();

// Sockets in the middle of a paced resume: the replay goes out page by page, and every other
// frame for the socket (broadcasts, batches, acks, errors) waits in its hold, in order, until
// `synced` has gone. A hold is bounded like the socket's output, and in time.
const holds = new WeakMap();
// The drain wait polls after 1, 2, 4 ... ms, then every 50 ms.
const MAX_DRAIN_POLL_MS = 50;

/** Sets the bound of a socket's unsent output, and the close code and reason past it. */
export function configureSlowConsumers(maxBufferedBytes, code, reason) {
  slowConsumer.maxBufferedBytes = maxBufferedBytes;
  slowConsumer.code = code;
  slowConsumer.reason = reason;
}

/** Closes a socket as a slow consumer, once; it gets nothing more. */
export function closeSlowConsumer(ws) {
  if (cutOff.has(ws)) return;
  cutOff.add(ws);
  holds.delete(ws);
  try {
    ws.close(slowConsumer.code, slowConsumer.reason);
  } catch (_) {
    // Already closing.
  }
}

// The one place that hands a frame to a socket.
function transmit(ws, text) {
  if (cutOff.has(ws)) return;
  if (ws.bufferedAmount > slowConsumer.maxBufferedBytes) {
    closeSlowConsumer(ws);
    return;
  }
  try {
    ws.send(text);
  } catch (_) {
    // Closing sockets refuse frames.
  }
}

function send(ws, text) {
  const hold = holds.get(ws);
  if (hold === undefined) {
    transmit(ws, text);
    return;
  }
  hold.frames.push(text);
  hold.bytes += text.length;
  if (hold.bytes > slowConsumer.maxBufferedBytes || Date.now() > hold.until) closeSlowConsumer(ws);
}

/**
 * Holds back every frame for `ws` but its replay pages, for at most `maxHoldMs` (past it, or
 * past the bound, the socket is closed as a slow consumer).
 */
export function holdSocket(ws, maxHoldMs) {
  holds.set(ws, { frames: [], bytes: 0, until: Date.now() + maxHoldMs });
}

/**
 * Sends one page of a replay (frames joined by `\n`) ahead of the held frames. Whether the
 * socket is still open and not cut off.
 */
export function sendReplayPage(ws, page) {
  for (const frame of page.split('\n')) transmit(ws, frame);
  return !cutOff.has(ws) && ws.readyState === OPEN;
}

/**
 * Resolves to true once the socket's unsent output is at most `lowWater` bytes, polling on a
 * short timer; to false if it closes meanwhile, or if it stays above for `maxWaitMs`: then it is
 * closed as a slow consumer.
 */
export function whenDrained(ws, lowWater, maxWaitMs) {
  const giveUpAt = Date.now() + maxWaitMs;
  let delay = 1;
  return new Promise((resolve) => {
    const check = () => {
      if (cutOff.has(ws) || ws.readyState !== OPEN) {
        resolve(false);
      } else if (ws.bufferedAmount <= lowWater) {
        resolve(true);
      } else if (Date.now() >= giveUpAt) {
        closeSlowConsumer(ws);
        resolve(false);
      } else {
        setTimeout(check, delay);
        delay = Math.min(delay * 2, MAX_DRAIN_POLL_MS);
      }
    };
    check();
  });
}

/** Sends the frame that ends a replay (`synced`), then the held frames in order, and releases. */
export function endReplay(ws, frame) {
  const hold = holds.get(ws);
  holds.delete(ws);
  transmit(ws, frame);
  if (hold !== undefined) for (const held of hold.frames) transmit(ws, held);
}

function pack(frames) {
  return frames.length === 1 ? frames[0] : '[' + frames.join(',') + ']';
}

function enqueue(state, entry, delayMs) {
  let queue = queues.get(state);
  if (queue === undefined) {
    queue = { entries: [], bytes: 0, due: Infinity, firstFor: new Map(), plainFrom: 0, plainWaiting: false };
    queues.set(state, queue);
  }
  queue.entries.push(entry);
  queue.bytes += entry.frame.length;
  if (entry.plain) queue.plainWaiting = true;
  if (queue.entries.length >= MAX_ENTRIES || queue.bytes >= MAX_BYTES) {
    flushQueue(state);
    return;
  }
  const due = Date.now() + delayMs;
  if (due < queue.due) {
    queue.due = due;
    setTimeout(() => {
      if (queues.get(state) === queue) flushQueue(state);
    }, delayMs);
  }
}

// Sends the presence frames waiting for plain sockets, each alone but all in one turn (the
// runtime then starts one output pump per socket, not one per frame).
function flushPlain(state, queue) {
  if (!queue.plainWaiting) return;
  const entries = queue.entries;
  for (const ws of state.getWebSockets(PLAIN)) {
    const from = Math.max(queue.plainFrom, queue.firstFor.get(ws) ?? 0);
    for (let i = from; i < entries.length; i++) {
      const e = entries[i];
      if (e.plain && e.except !== ws) send(ws, e.frame);
    }
  }
  queue.plainFrom = entries.length;
  queue.plainWaiting = false;
}

/** Sends every frame still waiting for a batch now. */
export function flushQueue(state) {
  const queue = queues.get(state);
  if (queue === undefined) return;
  queues.delete(state);
  flushPlain(state, queue);
  if (!kindsOf(state).batched) return;
  const entries = queue.entries;
  // Sockets that get a list of their own: senders, ack receivers, and sockets accepted after
  // the queue began (they get only what was queued after their welcome).
  const own = new Set(queue.firstFor.keys());
  for (const e of entries) {
    if (e.except !== undefined) own.add(e.except);
    if (e.only !== undefined) own.add(e.only);
  }
  let shared;
  for (const ws of state.getWebSockets(BATCH)) {
    if (own.has(ws)) {
      const mine = [];
      for (let i = queue.firstFor.get(ws) ?? 0; i < entries.length; i++) {
        const e = entries[i];
        if (e.only === undefined ? e.except !== ws : e.only === ws) mine.push(e.frame);
      }
      if (mine.length > 0) send(ws, pack(mine));
      continue;
    }
    if (shared === undefined) {
      const all = [];
      for (const e of entries) if (e.only === undefined) all.push(e.frame);
      shared = all.length > 0 ? pack(all) : null;
    }
    if (shared !== null) send(ws, shared);
  }
}

/**
 * Sends `frame` to every socket of the room but `except`: now to plain sockets (unless
 * `delayMs` > 0), with the next batch to batched ones.
 */
export function sendToAll(state, frame, except, delayMs) {
  const kinds = kindsOf(state);
  if (delayMs > 0 && !kinds.untagged) {
    enqueue(state, { frame, except, only: undefined, plain: true }, delayMs);
    return;
  }
  const queue = queues.get(state);
  if (queue !== undefined) flushPlain(state, queue);
  let batched = kinds.batched;
  if (kinds.untagged) {
    batched = false;
    const links = new Set(state.getWebSockets(LINK));
    for (const ws of state.getWebSockets()) {
      if (ws === except || links.has(ws)) continue;
      if (takesBatches(state, ws)) batched = true;
      else send(ws, frame);
    }
  } else {
    // Only the sockets that take frames one by one: a room of batched sockets is not scanned.
    for (const ws of state.getWebSockets(PLAIN)) if (ws !== except) send(ws, frame);
    if (batched && isQuiet(state, Date.now()) && queue === undefined) {
      const sockets = state.getWebSockets(BATCH);
      if (sockets.length <= QUIET_MAX_SOCKETS) {
        // Nothing waits in a small, quiet room: the frame goes now, alone.
        for (const ws of sockets) if (ws !== except) send(ws, frame);
        return;
      }
    }
  }
  if (batched) enqueue(state, { frame, except, only: undefined, plain: false }, delayMs);
}

function noteAccepted(state, ws) {
  const queue = queues.get(state);
  if (queue !== undefined) queue.firstFor.set(ws, queue.entries.length);
}

/**
 * The whole accept in one call: the pair, the hibernation accept, the attachment, the welcome
 * and the 101 answer (object literals, where Rust would make a call per field).
 * `WebSocketPair` and `Response` are the runtime's globals (a test provides its own).
 */
export function acceptSocket(state, batched, attachment, welcome, subprotocol) {
  const pair = new globalThis.WebSocketPair();
  const client = pair[0];
  const server = pair[1];
  const kinds = kindsOf(state);
  if (batched) {
    state.acceptWebSocket(server, [BATCH]);
    kinds.batched = true;
    noteAccepted(state, server);
  } else {
    state.acceptWebSocket(server, [PLAIN]);
    noteAccepted(state, server);
  }
  server.serializeAttachment(attachment);
  send(server, welcome);
  const init = { status: 101, webSocket: client };
  if (subprotocol !== undefined) init.headers = { 'sec-websocket-protocol': subprotocol };
  return { server, response: new globalThis.Response(null, init) };
}

/** Sends a frame meant for one socket, after the frames already queued for it. */
export function sendToOne(state, ws, frame) {
  const queue = queues.get(state);
  if (queue === undefined) {
    send(ws, frame);
  } else if (takesBatches(state, ws)) {
    enqueue(state, { frame, except: undefined, only: ws, plain: false }, 0);
  } else {
    flushPlain(state, queue);
    send(ws, frame);
  }
}
