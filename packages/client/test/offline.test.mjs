// Offline (navigator.onLine false): status `offline`, no polling and no retries; `online`
// resumes at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, msg } from './fakes.mjs';

function offlineSetup({ onLine = true, client = {}, http } = {}) {
  const navigator = { onLine };
  const events = new EventTarget();
  const t = setup({ client: { navigator, events, ...client }, http });
  const go = (on) => {
    navigator.onLine = on;
    events.dispatchEvent(new Event(on ? 'online' : 'offline'));
  };
  return { ...t, navigator, go };
}

/** Asserts that for a long while nothing is opened or requested. */
async function assertIdle(t, ms = 600000) {
  const sockets = t.ws.sockets.length;
  const calls = t.calls.length;
  await t.clock.tick(ms);
  assert.equal(t.ws.sockets.length, sockets, 'no socket while offline');
  assert.equal(t.calls.length, calls, 'no HTTP request while offline');
}

test('starting offline: status offline, nothing opened until online, then at once', async () => {
  const t = offlineSetup({ onLine: false });
  await t.clock.tick(0);
  assert.equal(t.client.status, 'offline');
  assert.equal(t.ws.sockets.length, 0);
  await assertIdle(t);
  assert.equal(t.clock.pending.length, 0, 'no timers while offline');
  t.go(true);
  await t.clock.tick(0);
  assert.equal(t.ws.sockets.length, 1);
  assert.equal(t.client.status, 'connecting');
  t.ws.last().welcome();
  // (`offline` itself was set inside connect(), before the test's listeners existed.)
  assert.deepEqual(t.statuses(), ['connecting', 'open']);
});

test('going offline while open: socket dropped, sends queued, no retry; online resumes with since', async () => {
  const t = offlineSetup();
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 5 });
  t.ws.last().push(msg(6));
  const first = t.ws.last();
  t.go(false);
  assert.equal(first.closedWith, 1005, 'the socket was closed by the client');
  assert.equal(t.client.status, 'offline');
  const p = t.client.send('while offline');
  await assertIdle(t);
  assert.equal(t.client.pending, 1);
  t.go(true);
  await t.clock.tick(0);
  const s = t.ws.last();
  assert.notEqual(s, first);
  assert.equal(s.params.get('since'), '6');
  assert.equal(t.client.status, 'reconnecting');
  s.welcome({ seq: 6 });
  assert.deepEqual(s.published().map((f) => f.cid), [p.cid]);
  assert.deepEqual(t.statuses(), ['open', 'offline', 'reconnecting', 'open']);
});

test('a socket that closes while navigator.onLine is false goes offline without an event', async () => {
  const t = offlineSetup();
  await t.clock.tick(0);
  t.ws.last().welcome();
  t.navigator.onLine = false; // the browser closed the socket before firing `offline`
  t.ws.last().serverClose(1006);
  assert.equal(t.client.status, 'offline');
  await assertIdle(t);
});

test('offline while polling: polling stops (no failing requests), status offline; online tries the socket at once', async () => {
  const state = { messages: [msg(1)] };
  const t = offlineSetup({
    client: { maxFailures: 1, since: 0 },
    http: (c) => (c.method === 'GET' ? { status: 200, body: { messages: state.messages.filter((m) => m.seq > Number(c.query.after)), has_more: false } } : undefined),
  });
  await t.clock.tick(0);
  t.ws.last().fail();
  await t.clock.tick(0);
  assert.equal(t.client.status, 'polling');
  assert.deepEqual(t.seqs(), [1]);
  t.go(false);
  assert.equal(t.client.status, 'offline');
  t.client.send('queued');
  await assertIdle(t);
  t.go(true);
  await t.clock.tick(0);
  assert.equal(t.ws.sockets.length, 2, 'a socket at once');
  t.ws.last().fail(); // WebSockets still blocked: back to polling
  await t.clock.tick(0);
  assert.equal(t.client.status, 'polling');
  assert.ok(t.calls.some((c) => c.method === 'POST'), 'the queued send goes out over HTTP');
  assert.deepEqual(t.statuses(), ['polling', 'offline', 'reconnecting', 'polling']);
});

test('an offline event without navigator.onLine false (no navigator) only drops and reconnects', async () => {
  const events = new EventTarget();
  const t = setup({ client: { navigator: null, events } });
  await t.clock.tick(0);
  t.ws.last().welcome();
  events.dispatchEvent(new Event('offline'));
  assert.equal(t.client.status, 'reconnecting');
  await t.next();
  assert.equal(t.ws.sockets.length, 2);
});

test('online while the token for an earlier attempt is still on its way: the status leaves offline', async () => {
  let release;
  const t = offlineSetup({ client: { token: undefined, getToken: () => new Promise((r) => (release = r)) } });
  await t.clock.tick(0);
  t.go(false); // no socket yet: the client waits for getToken
  assert.equal(t.client.status, 'offline');
  t.go(true);
  release('tok');
  await t.clock.tick(0);
  assert.equal(t.ws.sockets.length, 1);
  assert.equal(t.client.status, 'connecting');
});
