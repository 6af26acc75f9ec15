// inbox(): the user's rooms from the feed `user:<id>`, with previews and unread counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inbox } from '../dist/index.js';
import { FakeClock, fakeFetch, fakeSockets, historyOf, msg, setup } from './fakes.mjs';

/** The feed's message `feedSeq`: room `room` has its newest message `seq` and `unread` unread. */
const update = (feedSeq, room, seq, unread, preview = 'm' + seq) =>
  msg(feedSeq, { room: 'user:alice', event: 'room.update', from: null, data: { room, seq, event: 'message', from: { id: 'bob' }, preview, unread } });

function open(feed, options = {}) {
  const clock = new FakeClock();
  const ws = fakeSockets();
  const calls = [];
  const box = inbox({
    url: 'http://relay.test',
    user: 'alice',
    token: 'T1',
    WebSocket: ws.FakeWebSocket,
    fetch: fakeFetch(typeof feed === 'function' ? feed : historyOf(feed), calls),
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random: () => 0.5,
    events: null,
    heartbeat: 0,
    ...options,
  });
  const changes = [];
  const errors = [];
  box.on('change', (rooms) => changes.push(rooms.map((r) => [r.room, r.unread])));
  box.on('error', (e) => errors.push(e.code));
  return { box, clock, ws, calls, changes, errors };
}

test('the inbox lists the rooms from the feed, newest update first, and follows it live', async () => {
  const feed = [update(1, 'chat:1', 5, 2), update(2, 'chat:2', 3, 1), msg(3, { room: 'user:alice', event: 'other' }), update(4, 'chat:1', 6, 3, 'latest')];
  const t = open(feed);
  await t.box.ready;
  assert.equal(t.calls.at(-1).path, '/v1/rooms/user:alice/messages');
  assert.deepEqual(t.box.rooms.map((r) => [r.room, r.seq, r.unread, r.preview, r.updated]), [
    ['chat:1', 6, 3, 'latest', 4],
    ['chat:2', 3, 1, 'm3', 2],
  ]);
  assert.equal(t.box.unread, 4);
  assert.deepEqual(t.changes, [[['chat:1', 3], ['chat:2', 1]]]);

  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ room: 'user:alice', seq: 4 });
  ws.push(update(5, 'chat:2', 4, 2, 'hey'));
  assert.deepEqual(t.changes.at(-1), [['chat:2', 2], ['chat:1', 3]]);
  assert.equal(t.box.rooms[0].preview, 'hey');
  ws.push(msg(6, { room: 'user:alice', event: 'note' }));
  assert.equal(t.changes.length, 2, 'other feed messages change nothing');
  t.box.close();
  assert.equal(t.box.feed.status, 'closed');
});

test('marking a room read: its read marker goes out, the entry shows 0 at once, and an update computed before the read does not bring the count back', async () => {
  const t = open([update(1, 'chat:1', 6, 3), update(2, 'chat:2', 9, 4)]);
  await t.box.ready;
  await t.clock.tick(0);
  const feedSocket = t.ws.last();
  feedSocket.welcome({ room: 'user:alice', seq: 2 });

  const room = setup({ client: { room: 'chat:1' } });
  await room.clock.tick(0);
  room.ws.last().welcome({ seq: 6 });
  t.box.markRead(room.client);
  assert.deepEqual(room.ws.last().sent.filter((f) => f.type === 'read'), [{ type: 'read', seq: 6 }]);
  assert.deepEqual(t.changes.at(-1), [['chat:2', 4], ['chat:1', 0]]);

  feedSocket.push(update(3, 'chat:1', 6, 3)); // on its way before the relay saw the read
  assert.equal(t.box.rooms.find((r) => r.room === 'chat:1').unread, 0);
  feedSocket.push(update(4, 'chat:1', 7, 1)); // a new message after the read
  assert.equal(t.box.rooms.find((r) => r.room === 'chat:1').unread, 1);

  t.box.markRead('chat:2'); // by name: up to the newest message the inbox knows of
  assert.equal(t.box.rooms.find((r) => r.room === 'chat:2').unread, 0);
  assert.equal(t.box.unread, 1);
  t.box.markRead('chat:9'); // unknown: nothing to do
  assert.equal(t.box.rooms.length, 2);
});

test('the inbox keeps the `limit` most recently updated rooms', async () => {
  const t = open([update(1, 'a', 1, 1), update(2, 'b', 1, 1), update(3, 'c', 1, 1)], { limit: 2 });
  await t.box.ready;
  assert.deepEqual(t.box.rooms.map((r) => r.room), ['c', 'b']);
  assert.equal(t.calls.at(-1).query.limit, '2');
});

test('a feed the token does not grant: ready rejects and the inbox reports the error', async () => {
  const t = open(() => ({ status: 403, body: { error: { code: 'forbidden', message: 'room not granted' } } }));
  await assert.rejects(t.box.ready);
  assert.ok(t.errors.includes('forbidden'), t.errors.join());
  assert.equal(t.box.feed.status, 'closed');
});
