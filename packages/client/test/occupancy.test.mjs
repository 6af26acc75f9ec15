// Big rooms: a welcome with counts instead of the list, `occupancy` frames, the counts getter,
// and the switch from a list to counts on an open connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup } from './fakes.mjs';

function record(client) {
  const seen = [];
  client.on('occupancy', (o) => seen.push(['occupancy', o.connections, o.users]));
  client.on('presence', (p) => seen.push(['presence', p.event, (p.presence || []).length]));
  return seen;
}

test('a welcome with counts keeps no list and tells the counts', async () => {
  const t = setup();
  const seen = record(t.client);
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 0, presence: undefined, occupancy: { connections: 250, users: 101 } });
  assert.deepEqual(t.client.presence, []);
  assert.deepEqual(t.client.occupancy, { connections: 250, users: 101 });
  assert.deepEqual(t.client.counts, { connections: 250, users: 101 });
  assert.deepEqual(seen, [['presence', 'sync', 0], ['occupancy', 250, 101]]);
  ws.push({ type: 'occupancy', connections: 240, users: 99 });
  assert.deepEqual(t.client.counts, { connections: 240, users: 99 });
  assert.deepEqual(seen.at(-1), ['occupancy', 240, 99]);
});

test('the first occupancy frame drops the list; a reconnect with a list brings it back', async () => {
  const t = setup();
  const seen = record(t.client);
  await t.clock.tick(0);
  let ws = t.ws.last();
  ws.welcome({ seq: 0 });
  ws.push({ type: 'presence', event: 'join', user: { id: 'bob' } });
  assert.equal(t.client.presence.length, 2);
  assert.deepEqual(t.client.counts, { users: 2, connections: null });
  assert.equal(t.client.occupancy, null);
  ws.push({ type: 'occupancy', connections: 101, users: 101 });
  assert.deepEqual(t.client.presence, []);
  assert.deepEqual(t.client.counts, { connections: 101, users: 101 });
  assert.deepEqual(seen.slice(-2), [['presence', 'sync', 0], ['occupancy', 101, 101]]);
  ws.push({ type: 'occupancy', connections: 102, users: 102 });
  assert.equal(seen.filter(([kind]) => kind === 'presence').length, 3, 'one sync per switch');
  ws.serverClose(1006);
  await t.next();
  ws = t.ws.last();
  ws.welcome({ seq: 0 });
  assert.equal(t.client.occupancy, null, 'the room lists again');
  assert.equal(t.client.presence.length, 1);
});
