// Against a real relay (wrangler dev): a token from signToken opens a socket, a signed
// broadcast reaches it with the seq it returned, members round-trip, disconnectUser closes it.
// Needs RELAY_URL, JWT_SECRET, WEBHOOK_SECRET and ADMIN_SECRET; without them the whole suite
// is reported as skipped (not passed).
import { describe, test as nodeTest, after } from 'node:test';
import assert from 'node:assert/strict';
import { RelayServer, signToken } from '../dist/index.js';

const { RELAY_URL, JWT_SECRET, WEBHOOK_SECRET, ADMIN_SECRET } = process.env;
const missing = ['RELAY_URL', 'JWT_SECRET', 'WEBHOOK_SECRET', 'ADMIN_SECRET'].filter((name) => !process.env[name]);
const skip = missing.length > 0 && `SKIPPED: needs a relay (${missing.join(', ')} not set)`;
const WAIT_MS = 10_000;

/** A socket to `room` whose frames (batched or not) are collected, with waits bounded by WAIT_MS. */
function openSocket(room, token) {
  const url = `${RELAY_URL.replace(/^http/, 'ws')}/v1/rooms/${encodeURIComponent(room)}/ws`;
  const socket = new WebSocket(url, ['relay.v1', `bearer.${token}`]);
  const frames = [];
  const waiters = new Set();
  const check = () => {
    for (const waiter of waiters) waiter();
  };
  socket.addEventListener('message', (event) => {
    const parsed = JSON.parse(event.data);
    frames.push(...(Array.isArray(parsed) ? parsed : [parsed]));
    check();
  });
  const closed = new Promise((resolve) => socket.addEventListener('close', (event) => resolve(event)));
  closed.then(check);
  const frame = (predicate, what) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(look);
        reject(new Error(`no ${what} within ${WAIT_MS} ms; got ${JSON.stringify(frames)}`));
      }, WAIT_MS);
      function look() {
        const found = frames.find(predicate);
        if (found) {
          clearTimeout(timer);
          waiters.delete(look);
          resolve(found);
        }
      }
      waiters.add(look);
      look();
    });
  // The relay's close frame moves the socket to CLOSING; Node's WebSocket then fires `close`
  // only when the TCP connection ends, which wrangler dev's runtime leaves to the client. So
  // once CLOSING, the test closes its side and reads the code and reason the relay sent.
  const closedWithin = () =>
    new Promise((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if (socket.readyState === WebSocket.CLOSING || socket.readyState === WebSocket.CLOSED) {
          clearInterval(poll);
          socket.close();
          closed.then(resolve);
        } else if (Date.now() - started > WAIT_MS) {
          clearInterval(poll);
          reject(new Error('the socket stayed open'));
        }
      }, 25);
    });
  return { socket, frame, closedWithin };
}

// Each test is skipped on its own, so that the summary counts them as skipped.
const test = (name, fn) => nodeTest(name, { skip }, fn);

describe(`@edge-relay/server against a relay${skip ? ` (${skip})` : ''}`, () => {
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const room = `sdk-${run}:Саратов`;
  const user = `sdk-user-${run}`;
  const sockets = [];
  const relay = skip
    ? undefined
    : new RelayServer({ url: RELAY_URL, webhookSecret: WEBHOOK_SECRET, adminSecret: ADMIN_SECRET });
  after(() => sockets.forEach((s) => s.socket.close()));

  test('a broadcast reaches a socket opened with a signToken token, with the seq it returned', async () => {
    const token = await signToken({ secret: JWT_SECRET, sub: user, name: 'SDK', rooms: [`sdk-${run}:*`], ttlSeconds: 300 });
    const client = openSocket(room, token);
    sockets.push(client);
    const welcome = await client.frame((f) => f.type === 'welcome', 'welcome');
    assert.equal(welcome.user.id, user);
    const outcome = await relay.broadcast([room], 'order:new', { order: 42 });
    assert.equal(outcome.results.length, 1);
    const [result] = outcome.results;
    assert.equal(result.room, room);
    assert.equal(typeof result.seq, 'number', JSON.stringify(result));
    const message = await client.frame((f) => f.type === 'message' && f.event === 'order:new', 'broadcast message');
    assert.deepEqual([message.seq, message.room, message.from, message.data], [result.seq, room, null, { order: 42 }]);

    // The same id again is a duplicate: the original seq, nothing delivered twice.
    const again = await relay.broadcast([room], 'order:new', { order: 42 }, { id: outcome.id });
    assert.deepEqual(again.results, outcome.results);
    const history = await relay.history(room, { token, after: 0 });
    assert.equal(history.messages.filter((m) => m.event === 'order:new').length, 1);
  });

  test('setMembers and getMembers round-trip (signed over a percent-encoded path)', async () => {
    const members = [{ id: user, role: 'customer' }, { id: 'ann' }];
    const byId = (list) => [...list].sort((a, b) => (a.id < b.id ? -1 : 1));
    const set = await relay.setMembers(room, members);
    assert.deepEqual(byId(set.members), byId(members));
    const got = await relay.getMembers(room);
    assert.equal(got.room, room);
    assert.deepEqual(byId(got.members), byId(members));
  });

  test('disconnectUser closes the user socket with 4003 and the reason', async () => {
    const token = await signToken({ secret: JWT_SECRET, sub: user, rooms: [`sdk-${run}:*`], ttlSeconds: 300 });
    const client = openSocket(`sdk-${run}:second`, token);
    sockets.push(client);
    await client.frame((f) => f.type === 'welcome', 'welcome');
    const closed = client.closedWithin();
    const answer = await relay.disconnectUser(user, 'sdk test');
    assert.equal(answer.user, user, JSON.stringify(answer));
    const event = await closed.catch((error) => assert.fail(`${error.message} after ${JSON.stringify(answer)}`));
    assert.deepEqual([event.code, event.reason], [4003, 'sdk test']);
  });

  test('ban closes the user socket with 4003 banned and refuses them until unban', async () => {
    const banned = `${user}-banned`;
    const bannedRoom = `sdk-${run}:bans`;
    const token = await signToken({ secret: JWT_SECRET, sub: banned, rooms: [bannedRoom], ttlSeconds: 300 });
    const client = openSocket(bannedRoom, token);
    sockets.push(client);
    await client.frame((f) => f.type === 'welcome', 'welcome');
    const closed = client.closedWithin();
    const answer = await relay.ban(bannedRoom, banned, { until: new Date(Date.now() + 3600_000) });
    assert.equal(answer.user, banned, JSON.stringify(answer));
    const event = await closed;
    assert.deepEqual([event.code, event.reason], [4003, 'banned']);
    assert.deepEqual((await relay.bans(bannedRoom)).bans.map((b) => b.user), [banned]);
    await assert.rejects(relay.history(bannedRoom, { token, after: 0 }), (e) => e.code === 'forbidden');
    assert.equal((await relay.unban(bannedRoom, banned)).lifted, true);
    assert.equal((await relay.history(bannedRoom, { token, after: 0 })).messages.length, 0);
  });

  test('stats answer with the admin secret; a wrong webhook secret is a typed 401', async () => {
    const stats = await relay.stats();
    assert.equal(typeof stats.connections, 'number');
    const wrong = new RelayServer({ url: RELAY_URL, webhookSecret: 'not-the-secret' });
    await assert.rejects(wrong.getMembers(room), (error) => {
      assert.deepEqual([error.name, error.code, error.status, error.attempts], ['RelayError', 'unauthorized', 401, 1]);
      return true;
    });
  });
});
