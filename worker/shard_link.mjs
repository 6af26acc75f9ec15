// The links of sharded fan-out (see src/shard_fanout.rs): one WebSocket between a room (the
// sequencer) and each of its viewer-holding shards. The shard opens it (`openLink`); the room
// accepts it as a hibernatable socket tagged `link` (`acceptLink`), so that a link never keeps
// the room awake, and sends down it one batch per turn of its event loop: every frame the room
// broadcasts (with its seq when it is a message), and the acks, errors and closes meant for one
// viewer of that shard. One WebSocket message per batch per shard, not one request per frame.
//
// Why a timer: as in fanout.mjs, the runtime delivers the frames already waiting for the room
// before it fires a zero-delay timer, so a burst of publishes leaves as one batch. The queue is
// bounded: past MAX_ENTRIES frames or MAX_BYTES it is sent at once.

export const LINK = 'link';
const MAX_ENTRIES = 256;
const MAX_BYTES = 1 << 20;

// Per room state: how many links it has (counted once, then kept until one opens or closes),
// and the entries waiting for the next batch.
const linkCounts = new WeakMap();
const queues = new WeakMap();

/**
 * Whether the room has a shard link (a room without one pays nothing more per frame);
 * `recount`: a link closed, count them again. (One function for both: wasm-bindgen imports
 * each such plain function of a module by a namespace import of its own, and two of one
 * module make a duplicate key in the bundle.)
 */
export function hasLinks(state, recount) {
  if (recount) linkCounts.delete(state);
  let count = linkCounts.get(state);
  if (count === undefined) {
    count = state.getWebSockets(LINK).length;
    linkCounts.set(state, count);
  }
  return count > 0;
}

/**
 * Accepts a shard's link: the hibernatable accept, the attachment naming the shard, the hello
 * (the room's last seq) as its first message, and the 101 answer.
 */
export function acceptLink(state, attachment, hello) {
  const pair = new globalThis.WebSocketPair();
  const server = pair[1];
  state.acceptWebSocket(server, [LINK]);
  server.serializeAttachment(attachment);
  server.send(hello);
  linkCounts.delete(state);
  return new globalThis.Response(null, { status: 101, webSocket: pair[0] });
}

function enqueue(state, to, entry) {
  let queue = queues.get(state);
  if (queue === undefined) {
    queue = { entries: [], bytes: 0 };
    queues.set(state, queue);
    setTimeout(() => {
      if (queues.get(state) === queue) flushLinks(state);
    }, 0);
  }
  queue.entries.push({ to, entry });
  queue.bytes += (entry.f ?? '').length;
  if (queue.entries.length >= MAX_ENTRIES || queue.bytes >= MAX_BYTES) flushLinks(state);
}

function batch(entries) {
  return JSON.stringify({ t: 'batch', e: entries });
}

/** Sends every waiting entry now: one message per link. */
export function flushLinks(state) {
  const queue = queues.get(state);
  if (queue === undefined) return;
  queues.delete(state);
  const targeted = new Set();
  for (const { to } of queue.entries) if (to !== undefined) targeted.add(to);
  let shared;
  for (const link of state.getWebSockets(LINK)) {
    let text;
    if (targeted.has(link)) {
      text = batch(queue.entries.filter((q) => q.to === undefined || q.to === link).map((q) => q.entry));
    } else {
      if (shared === undefined) shared = batch(queue.entries.filter((q) => q.to === undefined).map((q) => q.entry));
      text = shared;
    }
    try {
      link.send(text);
    } catch (_) {
      // A closing link: the shard pulls what it missed when it links again.
    }
  }
}

/** A frame the room broadcasts, for every shard's viewers but the one named `except`. */
export function linkBroadcast(state, seq, frame, except) {
  const entry = { s: seq, f: frame };
  if (except !== undefined) entry.x = except;
  enqueue(state, undefined, entry);
}

/** A frame for one viewer (`conn`) of the shard behind `link`: an ack, an error. */
export function linkToViewer(state, link, conn, frame) {
  enqueue(state, link, { s: 0, f: frame, o: conn });
}

/** A viewer's token was renewed: its new expiry (unix seconds), before the frames after. */
export function linkRenewViewer(state, link, conn, exp) {
  enqueue(state, link, { s: 0, f: '', o: conn, a: exp });
}

/** Closes one viewer of the shard behind `link`, after the frames before. */
export function linkCloseViewer(state, link, conn, code, reason) {
  enqueue(state, link, { s: 0, f: '', o: conn, c: [code, reason] });
}

/** Closes every socket of these users on every shard (a ban, a disconnect). */
export function linkCloseUsers(state, users, code, reason) {
  enqueue(state, undefined, { s: 0, f: '', u: users, c: [code, reason] });
}

/**
 * The shard's side: opens the link to the room `name` (`env.ROOMS`) with an upgrade of `url`
 * and these headers. Resolves to the accepted socket, or null when the room refused. Each
 * message is handed to `onMessage(generation, text)`, the end (close or error, maybe both) to
 * `onClose(generation)`: the generation tells a new link's events from an old one's.
 */
export async function openLink(env, name, url, names, values, generation, onMessage, onClose) {
  const headers = { upgrade: 'websocket' };
  for (let i = 0; i < names.length; i++) headers[names[i]] = values[i];
  const response = await env.ROOMS.getByName(name).fetch(url, { headers });
  const ws = response.webSocket;
  if (ws === null || ws === undefined) return null;
  ws.accept();
  ws.addEventListener('message', (event) => {
    if (typeof event.data === 'string') onMessage(generation, event.data);
  });
  ws.addEventListener('close', () => onClose(generation));
  ws.addEventListener('error', () => onClose(generation));
  return ws;
}
