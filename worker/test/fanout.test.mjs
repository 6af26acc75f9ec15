// Unit tests of the fan-out module (worker/fanout.mjs) against a fake Durable Object state and
// fake sockets: the ordering of batched and plain delivery, acks, accepts and presence delays;
// slow consumers; the hold and the drain wait of a paced resume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  acceptSocket,
  closeSlowConsumer,
  configureQuietSends,
  configureSlowConsumers,
  endReplay,
  flushQueue,
  holdSocket,
  sendReplayPage,
  sendToAll,
  sendToOne,
  whenDrained,
} from '../fanout.mjs';

/** A server-side socket: records what it is sent; `bufferedAmount` is set by the test. */
class FakeSocket {
  constructor(name) {
    this.name = name;
    this.sent = [];
    this.closed = null;
    this.closes = 0;
    this.readyState = 1;
    this.bufferedAmount = 0;
    this.attachment = undefined;
  }
  send(text) {
    if (this.closed) throw new Error('socket is closing');
    this.sent.push(text);
  }
  close(code, reason) {
    if (this.closed) throw new Error('already closing');
    this.closed = { code, reason };
    this.closes++;
    this.readyState = 2;
  }
  serializeAttachment(value) {
    this.attachment = value;
  }
  /** The frames received, batches taken apart, as parsed JSON. */
  frames() {
    return this.sent.flatMap((text) => {
      const v = JSON.parse(text);
      return Array.isArray(v) ? v : [v];
    });
  }
}

/** The part of a DurableObjectState the module uses: accepted sockets and their tags. */
class FakeState {
  constructor() {
    this.sockets = [];
  }
  acceptWebSocket(ws, tags) {
    this.sockets.push({ ws, tags });
  }
  getWebSockets(tag) {
    return this.sockets.filter((s) => tag === undefined || s.tags.includes(tag)).map((s) => s.ws);
  }
  getTags(ws) {
    return this.sockets.find((s) => s.ws === ws).tags;
  }
}

class FakePair {
  constructor() {
    this[0] = new FakeSocket('client');
    this[1] = new FakeSocket('server');
  }
}

class FakeResponse {
  constructor(body, init) {
    this.body = body;
    this.init = init;
  }
}

globalThis.WebSocketPair = FakePair;
globalThis.Response = FakeResponse;

/** Accepts a socket the way the room does and returns its server end. */
function accept(state, batched, welcome = '{"type":"welcome"}') {
  return acceptSocket(state, batched, '{}', welcome, undefined).server;
}

const frame = (n) => JSON.stringify({ n });
const numbers = (ws) => ws.frames().filter((f) => 'n' in f).map((f) => f.n);

/**
 * A room with fake timers, so that the zero-delay and presence timers fire when told. The
 * queue's tests turn quiet sends off (`quietMs` 0), so every batched frame goes through it.
 */
function room(t, quietMs = 0) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
  configureQuietSends(quietMs);
  t.after(() => configureQuietSends(20));
  return new FakeState();
}

test('in a quiet room a batched frame goes at once; a burst waits for the turn', (t) => {
  const state = room(t, 20);
  const batched = accept(state, true);
  const sender = accept(state, true);
  sendToAll(state, frame(1), sender, 0);
  assert.deepEqual(numbers(batched), [1], 'no timer for the first frame of a quiet room');
  assert.deepEqual(numbers(sender), [], 'the sender is still left out');
  // Chat traffic: frames close behind one another by chance still go at once ...
  for (let n = 2; n <= 4; n++) {
    t.mock.timers.tick(5);
    sendToAll(state, frame(n), undefined, 0);
  }
  assert.deepEqual(numbers(batched), [1, 2, 3, 4], 'four frames within 15 ms: each at once');
  // ... until four frames came within 20 ms: the fifth is part of a burst and waits.
  sendToAll(state, frame(5), undefined, 0);
  sendToAll(state, frame(6), undefined, 0);
  assert.deepEqual(numbers(batched), [1, 2, 3, 4]);
  t.mock.timers.tick(0);
  assert.deepEqual(batched.sent.slice(5), [`[${frame(5)},${frame(6)}]`]);
  assert.deepEqual(numbers(sender), [2, 3, 4, 5, 6]);
  // While the burst goes on, frames keep waiting for the turn.
  t.mock.timers.tick(4);
  sendToAll(state, frame(7), undefined, 0);
  assert.deepEqual(numbers(batched), [1, 2, 3, 4, 5, 6], 'four frames in the last 9 ms');
  t.mock.timers.tick(0);
  assert.deepEqual(numbers(batched), [1, 2, 3, 4, 5, 6, 7]);
  // 20 ms after the fourth-last frame (at 15 ms), the room is quiet again.
  t.mock.timers.tick(16);
  sendToAll(state, frame(8), undefined, 0);
  assert.deepEqual(numbers(batched), [1, 2, 3, 4, 5, 6, 7, 8], 'quiet again: at once');
});

test('a large room batches even when quiet: a frame alone costs a send per socket', (t) => {
  const state = room(t, 20);
  const sockets = Array.from({ length: 33 }, () => accept(state, true));
  sendToAll(state, frame(1), undefined, 0);
  assert.deepEqual(numbers(sockets[0]), []);
  t.mock.timers.tick(0);
  assert.deepEqual(numbers(sockets[32]), [1]);
});

test('a quiet send never overtakes frames that wait (presence)', (t) => {
  const state = room(t, 20);
  const batched = accept(state, true);
  sendToAll(state, frame(1), undefined, 250);
  sendToAll(state, frame(2), undefined, 0);
  assert.deepEqual(numbers(batched), []);
  t.mock.timers.tick(0);
  assert.deepEqual(numbers(batched), [1, 2]);
});

test('plain and batched sockets in one room get every frame in order', (t) => {
  const state = room(t);
  const plain = accept(state, false);
  const batched = accept(state, true);
  for (let n = 1; n <= 3; n++) sendToAll(state, frame(n), undefined, 0);
  assert.deepEqual(numbers(plain), [1, 2, 3], 'plain sockets get each frame at once');
  assert.equal(plain.sent.length, 4, 'the welcome and one message per frame');
  assert.deepEqual(numbers(batched), [], 'batched sockets wait for the end of the turn');
  t.mock.timers.tick(0);
  assert.deepEqual(numbers(batched), [1, 2, 3]);
  assert.equal(batched.sent.length, 2, 'the welcome and one array');
  assert.equal(batched.sent[1], '[' + [1, 2, 3].map(frame).join(',') + ']');
});

test('a batched socket gets one JSON array per turn, a lone frame as the object', (t) => {
  const state = room(t);
  const batched = accept(state, true);
  sendToAll(state, frame(1), undefined, 0);
  sendToAll(state, frame(2), undefined, 0);
  t.mock.timers.tick(0);
  sendToAll(state, frame(3), undefined, 0);
  t.mock.timers.tick(0);
  assert.deepEqual(batched.sent.slice(1), [`[${frame(1)},${frame(2)}]`, frame(3)]);
});

test('the sender is left out of its own broadcast, plain or batched', (t) => {
  const state = room(t);
  const a = accept(state, true);
  const b = accept(state, true);
  const p = accept(state, false);
  sendToAll(state, frame(1), a, 0);
  sendToAll(state, frame(2), p, 0);
  t.mock.timers.tick(0);
  assert.deepEqual(numbers(a), [2]);
  assert.deepEqual(numbers(b), [1, 2]);
  assert.deepEqual(numbers(p), [1]);
});

test('acks keep their place among the broadcasts, for batched and plain sockets', (t) => {
  const state = room(t);
  const sender = accept(state, true);
  const other = accept(state, true);
  const plainSender = accept(state, false);
  const ack = (n) => JSON.stringify({ type: 'ack', seq: n });
  sendToAll(state, frame(1), sender, 0);
  sendToOne(state, sender, ack(1));
  sendToAll(state, frame(2), undefined, 0);
  sendToOne(state, plainSender, ack(2));
  sendToAll(state, frame(3), plainSender, 0);
  t.mock.timers.tick(0);
  const kinds = (ws) => ws.frames().slice(1).map((f) => (f.type === 'ack' ? `ack${f.seq}` : f.n));
  assert.deepEqual(kinds(sender), ['ack1', 2, 3]);
  assert.deepEqual(kinds(other), [1, 2, 3], 'acks go to their socket only');
  assert.deepEqual(kinds(plainSender), [1, 2, 'ack2']);
  // With nothing queued, an ack leaves at once.
  sendToOne(state, sender, ack(4));
  assert.equal(sender.sent.at(-1), ack(4));
});

test('a socket accepted while frames wait gets only what follows its welcome', (t) => {
  const state = room(t);
  const early = accept(state, true);
  sendToAll(state, frame(1), undefined, 0);
  const late = accept(state, true, '{"type":"welcome","late":true}');
  const latePlain = accept(state, false);
  sendToAll(state, frame(2), undefined, 0);
  t.mock.timers.tick(0);
  assert.deepEqual(numbers(early), [1, 2]);
  assert.deepEqual(late.frames(), [{ type: 'welcome', late: true }, { n: 2 }]);
  assert.deepEqual(numbers(latePlain), [2]);
});

test('a presence frame waits up to its delay, then leaves alone', (t) => {
  const state = room(t);
  const plain = accept(state, false);
  const batched = accept(state, true);
  sendToAll(state, frame(1), undefined, 250);
  t.mock.timers.tick(249);
  assert.deepEqual([numbers(plain), numbers(batched)], [[], []], 'still waiting at 249 ms');
  t.mock.timers.tick(1);
  assert.deepEqual([numbers(plain), numbers(batched)], [[1], [1]]);
});

test('waiting presence frames leave with, and before, a later immediate frame', (t) => {
  const state = room(t);
  const plain = accept(state, false);
  const batched = accept(state, true);
  sendToAll(state, frame(1), undefined, 250);
  sendToAll(state, frame(2), undefined, 250);
  t.mock.timers.tick(100);
  sendToAll(state, frame(3), undefined, 0);
  assert.deepEqual(numbers(plain), [1, 2, 3], 'the plain socket gets them all in this turn');
  t.mock.timers.tick(0);
  assert.deepEqual(numbers(batched), [1, 2, 3]);
  assert.equal(batched.sent.length, 2, 'in one array');
  t.mock.timers.tick(500);
  assert.deepEqual([numbers(plain), numbers(batched)], [[1, 2, 3], [1, 2, 3]], 'nothing twice');
});

test('an ack to a plain socket takes the presence frames waiting before it', (t) => {
  const state = room(t);
  const plain = accept(state, false);
  sendToAll(state, frame(1), undefined, 250);
  sendToOne(state, plain, JSON.stringify({ type: 'ack', seq: 9 }));
  assert.deepEqual(plain.frames().slice(1), [{ n: 1 }, { type: 'ack', seq: 9 }]);
});

test('a plain socket accepted while a join waits does not get that join', (t) => {
  const state = room(t);
  const first = accept(state, false);
  sendToAll(state, frame(1), undefined, 250);
  const second = accept(state, false);
  t.mock.timers.tick(250);
  assert.deepEqual([numbers(first), numbers(second)], [[1], []]);
});

test('the queue is flushed at once past its entry bound', (t) => {
  const state = room(t);
  const batched = accept(state, true);
  for (let n = 1; n <= 255; n++) sendToAll(state, frame(n), undefined, 0);
  assert.equal(batched.sent.length, 1, '255 frames still wait');
  sendToAll(state, frame(256), undefined, 0);
  assert.equal(batched.sent.length, 2, 'the 256th flushes without a timer');
  assert.deepEqual(numbers(batched), Array.from({ length: 256 }, (_, i) => i + 1));
});

test('the queue is flushed at once past its byte bound', (t) => {
  const state = room(t);
  const batched = accept(state, true);
  const big = (n) => JSON.stringify({ n, pad: 'x'.repeat(400 * 1024) });
  sendToAll(state, big(1), undefined, 0);
  sendToAll(state, big(2), undefined, 0);
  assert.equal(batched.sent.length, 1, '800 KiB still wait');
  sendToAll(state, big(3), undefined, 0);
  assert.equal(batched.sent.length, 2, 'past 1 MiB the queue leaves at once');
  assert.deepEqual(numbers(batched), [1, 2, 3]);
});

test('flushQueue sends what waits now; the accept answers 101 with the subprotocol', (t) => {
  const state = room(t);
  const batched = accept(state, true);
  sendToAll(state, frame(1), undefined, 250);
  flushQueue(state);
  assert.deepEqual(numbers(batched), [1]);
  const accepted = acceptSocket(state, false, '{"conn_id":"c"}', '{"type":"welcome"}', 'relay.v1');
  assert.equal(accepted.server.attachment, '{"conn_id":"c"}');
  assert.deepEqual(accepted.response.init.headers, { 'sec-websocket-protocol': 'relay.v1' });
  assert.equal(accepted.response.init.status, 101);
  assert.equal(state.getTags(accepted.server)[0], 'plain');
});

test('a socket that refuses frames (closing) does not stop the others', (t) => {
  const state = room(t);
  const closing = accept(state, false);
  const open = accept(state, false);
  closing.close(1000, 'bye');
  sendToAll(state, frame(1), undefined, 0);
  assert.deepEqual(numbers(open), [1]);
});

const MiB = 1 << 20;

test('a socket whose unsent output is past the bound is closed with 4010, once', (t) => {
  const state = room(t);
  configureSlowConsumers(2 * MiB, 4010, 'slow consumer');
  const slow = accept(state, false);
  const fine = accept(state, false);
  sendToAll(state, frame(1), undefined, 0);
  slow.bufferedAmount = 2 * MiB;
  sendToAll(state, frame(2), undefined, 0);
  assert.equal(slow.closed, null, 'at the bound it is still open');
  slow.bufferedAmount = 2 * MiB + 1;
  sendToAll(state, frame(3), undefined, 0);
  assert.deepEqual(slow.closed, { code: 4010, reason: 'slow consumer' });
  slow.bufferedAmount = 0;
  sendToAll(state, frame(4), undefined, 0);
  sendToOne(state, slow, frame(5));
  assert.deepEqual(numbers(slow), [1, 2], 'nothing after the frame that found it over the bound');
  assert.equal(slow.closes, 1);
  assert.deepEqual(numbers(fine), [1, 2, 3, 4], 'the others keep receiving');
});

test('a batched slow consumer is closed at the flush; the others get the batch', (t) => {
  const state = room(t);
  configureSlowConsumers(1 * MiB, 4010, 'slow consumer');
  const slow = accept(state, true);
  const fine = accept(state, true);
  slow.bufferedAmount = 1 * MiB + 1;
  sendToAll(state, frame(1), undefined, 0);
  sendToAll(state, frame(2), undefined, 0);
  t.mock.timers.tick(0);
  assert.equal(slow.closed.code, 4010);
  assert.deepEqual([numbers(slow), numbers(fine)], [[], [1, 2]]);
});

test('a message larger than the bound reaches a socket that has nothing unsent', (t) => {
  const state = room(t);
  configureSlowConsumers(1 * MiB, 4010, 'slow consumer');
  const reader = accept(state, true);
  const big = (n) => JSON.stringify({ n, pad: 'x'.repeat(600 * 1024) });
  sendToAll(state, big(1), undefined, 0);
  sendToAll(state, big(2), undefined, 0);
  assert.equal(reader.closed, null);
  assert.deepEqual(numbers(reader), [1, 2], 'one batch of 1.2 MiB');
});

const synced = (seq) => JSON.stringify({ type: 'synced', seq });
const page = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => frame(from + i)).join('\n');

test('a held socket gets its replay pages, then synced, then what came meanwhile, in order', (t) => {
  const state = room(t);
  configureSlowConsumers(2 * MiB, 4010, 'slow consumer');
  const other = accept(state, false);
  const plain = accept(state, false);
  const batched = accept(state, true);
  holdSocket(plain, 60_000);
  holdSocket(batched, 60_000);
  assert.equal(sendReplayPage(plain, page(1, 3)), true);
  assert.equal(sendReplayPage(batched, page(1, 3)), true);
  sendToAll(state, frame(4), undefined, 0);
  sendToAll(state, frame(5), undefined, 250);
  sendToOne(state, plain, JSON.stringify({ type: 'ack', seq: 6 }));
  sendToAll(state, frame(6), plain, 0);
  t.mock.timers.tick(300);
  assert.deepEqual(numbers(plain), [1, 2, 3], 'live frames wait while the replay runs');
  assert.deepEqual(numbers(batched), [1, 2, 3]);
  assert.deepEqual(numbers(other), [4, 5, 6], 'other sockets are not held');
  assert.equal(sendReplayPage(plain, page(7, 7)), true, 'pages still go out');
  endReplay(plain, synced(7));
  endReplay(batched, synced(3));
  const kinds = (ws) => ws.frames().slice(1).map((f) => f.type ?? f.n);
  assert.deepEqual(kinds(plain), [1, 2, 3, 7, 'synced', 4, 5, 'ack']);
  assert.deepEqual(kinds(batched), [1, 2, 3, 'synced', 4, 5, 6]);
  sendToAll(state, frame(8), undefined, 0);
  assert.deepEqual(numbers(plain), [1, 2, 3, 7, 4, 5, 8], 'released: live frames flow again');
});

test('a hold past the bound or past its time closes the socket with 4010', (t) => {
  const state = room(t);
  configureSlowConsumers(1 * MiB, 4010, 'slow consumer');
  const full = accept(state, false);
  const late = accept(state, false);
  holdSocket(full, 60_000);
  holdSocket(late, 1_000);
  const big = (n) => JSON.stringify({ n, pad: 'x'.repeat(300 * 1024) });
  for (let n = 1; n <= 3; n++) sendToOne(state, full, big(n));
  assert.equal(full.closed, null, '900 KiB held');
  sendToOne(state, full, big(4));
  assert.equal(full.closed.code, 4010);
  assert.equal(sendReplayPage(full, page(1, 1)), false, 'the replay learns it was cut off');
  sendToOne(state, late, frame(1));
  t.mock.timers.tick(1_001);
  sendToOne(state, late, frame(2));
  assert.deepEqual(late.closed, { code: 4010, reason: 'slow consumer' });
  endReplay(full, synced(1));
  assert.deepEqual([numbers(full), numbers(late)], [[], []], 'nothing reaches a cut-off socket');
});

test('whenDrained waits for the low-water mark, polling on a short timer', async (t) => {
  const state = room(t);
  const ws = accept(state, false);
  ws.bufferedAmount = 100;
  assert.equal(await whenDrained(ws, 100, 10_000), true, 'at the mark: at once');
  ws.bufferedAmount = 500 * 1024;
  let result;
  whenDrained(ws, 256 * 1024, 10_000).then((r) => (result = r));
  t.mock.timers.tick(1_000);
  await Promise.resolve();
  assert.equal(result, undefined, 'still above the mark');
  ws.bufferedAmount = 200 * 1024;
  t.mock.timers.tick(50);
  await Promise.resolve();
  assert.equal(result, true);
  assert.equal(ws.closed, null);
});

test('whenDrained gives up on a socket that does not drain: 4010', async (t) => {
  const state = room(t);
  const stuck = accept(state, false);
  stuck.bufferedAmount = 1 * MiB;
  let result;
  whenDrained(stuck, 256 * 1024, 10_000).then((r) => (result = r));
  for (let waited = 0; waited <= 10_050 && result === undefined; waited += 10) {
    t.mock.timers.tick(10);
    await Promise.resolve();
  }
  assert.equal(result, false);
  assert.deepEqual(stuck.closed, { code: 4010, reason: 'slow consumer' });
});

test('whenDrained answers false for a socket that closed, and closeSlowConsumer closes once', async (t) => {
  const state = room(t);
  const ws = accept(state, false);
  ws.bufferedAmount = 1 * MiB;
  const waiting = whenDrained(ws, 0, 10_000);
  ws.close(1000, 'bye');
  t.mock.timers.tick(10);
  assert.equal(await waiting, false);
  const slow = accept(state, false);
  closeSlowConsumer(slow);
  closeSlowConsumer(slow);
  assert.equal(slow.closes, 1);
  assert.equal(await whenDrained(slow, 0, 10), false);
});
