// The Vue bindings (@edge-relay/client/vue) mounted with Vue's createApp into happy-dom's
// document: one client per component instance, opened at mount and closed at unmount, state
// from the client's events, reactive options that reconnect only for another url or room.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Window } from 'happy-dom';
import { FakeClock, fakeFetch, fakeSockets, historyOf, msg } from './fakes.mjs';

const window = new Window({ url: 'http://page.test/' });
for (const name of ['window', 'document', 'HTMLElement', 'SVGElement', 'Element', 'Node', 'Event', 'MutationObserver']) {
  globalThis[name] = name === 'window' ? window : window[name];
}
const { createApp, defineComponent, effectScope, h, nextTick, shallowRef } = await import('vue');
const { useRoom, usePresence, useTyping, useInbox } = await import('../dist/vue.js');
const { RelayClient } = await import('../dist/index.js');

after(() => window.happyDOM.close());

/** Fakes for the clients the composables make, and what they made. */
function fakes(feed = []) {
  const clock = new FakeClock();
  const ws = fakeSockets();
  const calls = [];
  const options = {
    url: 'http://relay.test',
    room: 'chat:1',
    token: 'T1',
    WebSocket: ws.FakeWebSocket,
    fetch: fakeFetch(historyOf(feed), calls),
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random: () => 0.5,
    events: null,
    heartbeat: 0,
  };
  return { clock, ws, calls, options };
}

/** Mounts a component whose setup is `setup` and whose render is `render(state)`. */
function mount(setup, render = () => null) {
  const container = document.createElement('div');
  const app = createApp(defineComponent({ setup: () => { const state = setup(); return () => render(state); } }));
  app.mount(container);
  return { container, unmount: () => app.unmount() };
}

/** Lets the fake clients' promise chains, Vue's scheduler and real timers run. */
const flush = async (t) => {
  await t.clock.tick(0);
  await nextTick();
  await new Promise((resolve) => setTimeout(resolve, 5));
  await nextTick();
};

test('useRoom: one client and one socket per component, opened at mount; state and DOM follow it; unmount closes it', async () => {
  const t = fakes();
  let asked = 0;
  const options = shallowRef({ ...t.options, token: undefined, getToken: () => (asked++, 'T1') });
  let room;
  const view = mount(
    () => (room = useRoom(options)),
    (r) => h('ul', r.messages.value.map((m) => h('li', { key: m.seq }, m.data.text))),
  );
  await flush(t);
  assert.equal(asked, 1);
  assert.equal(t.ws.sockets.length, 1, 'one socket');
  const client = room.client.value;
  assert.ok(client instanceof RelayClient, 'the same class as the main entry');
  assert.equal(room.status.value, 'connecting');

  t.ws.last().welcome({ seq: 0 });
  await flush(t);
  assert.equal(room.status.value, 'open');
  t.ws.last().push([msg(1), msg(2)]);
  await flush(t);
  assert.equal(view.container.textContent, 'm1m2');

  // A new options object with the same url and room (and a new getToken): the same client.
  options.value = { ...options.value, getToken: () => (asked++, 'T1') };
  await flush(t);
  assert.equal(room.client.value, client);
  assert.equal(asked, 1);
  assert.equal(t.ws.sockets.length, 1);
  assert.equal(t.ws.last().closedWith, undefined, 'the socket was never closed');

  // A second instance of the component has its own client and socket.
  const other = mount(() => useRoom(t.options));
  await flush(t);
  assert.equal(t.ws.sockets.length, 2);
  other.unmount();
  await flush(t);
  assert.equal(t.ws.sockets[1].closedWith, 1000);
  assert.equal(t.ws.sockets[0].closedWith, undefined, 'the first component keeps its socket');

  view.unmount();
  await flush(t);
  assert.equal(client.status, 'closed');
  assert.equal(t.ws.sockets[0].closedWith, 1000);
});

test('useRoom: another room closes the old client and connects the new one; history loads once, before live; null is idle', async () => {
  const t = fakes(Array.from({ length: 5 }, (_, i) => msg(i + 1)));
  const options = shallowRef({ ...t.options, history: 3 });
  let room;
  const view = mount(() => (room = useRoom(options)));
  await flush(t);
  t.ws.last().welcome({ seq: 5 });
  await flush(t);
  t.ws.last().push(msg(6));
  await flush(t);
  assert.deepEqual(room.messages.value.map((m) => m.seq), [3, 4, 5, 6]);
  assert.equal(room.hasMore.value, true);
  assert.equal(t.calls.filter((c) => c.query.before).length, 1, 'loaded once');
  await room.loadOlder(5);
  assert.deepEqual(room.messages.value.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
  assert.equal(room.hasMore.value, false);

  const first = room.client.value;
  options.value = { ...t.options, room: 'chat:2' };
  await flush(t);
  assert.equal(first.status, 'closed');
  assert.equal(t.ws.sockets.length, 2);
  assert.match(t.ws.last().url, /chat%3A2/);
  assert.notEqual(room.client.value, first);
  assert.deepEqual(room.messages.value, [], 'the new room starts empty');
  options.value = null;
  await flush(t);
  assert.equal(room.client.value, null);
  assert.equal(room.status.value, 'idle');
  assert.equal(t.ws.last().closedWith, 1000);
  view.unmount();
});

test('useRoom calls the latest getToken (options as a getter) without reconnecting', async () => {
  const t = fakes();
  const tokens = [];
  const token = shallowRef('a.first.x');
  const view = mount(() => useRoom(() => ({ ...t.options, token: undefined, getToken: () => (tokens.push(token.value), token.value) })));
  await flush(t);
  token.value = 'a.second.x';
  await flush(t);
  t.ws.last().serverClose(4001, 'token expired');
  await t.clock.tick(1000); // the first retry comes after 250 ms (random 0.5)
  assert.deepEqual(tokens, ['a.first.x', 'a.second.x']);
  assert.equal(t.ws.last().token, 'a.second.x');
  assert.equal(t.ws.sockets.length, 2);
  view.unmount();
});

test('usePresence and useTyping follow the room: joins and leaves, typing that expires, ends with a message or a false', async () => {
  const t = fakes();
  let seen;
  const view = mount(() => {
    const { client } = useRoom(t.options);
    return (seen = { presence: usePresence(client), ...useTyping(client, { expireMs: 50 }) });
  });
  const ids = (list) => list.value.map((u) => u.id);
  await flush(t);
  const ws = t.ws.last();
  ws.welcome({ seq: 0, presence: [{ id: 'alice' }, { id: 'bob' }] });
  await flush(t);
  assert.deepEqual(ids(seen.presence), ['alice', 'bob']);
  ws.push({ type: 'presence', event: 'join', user: { id: 'carol' } });
  assert.deepEqual(ids(seen.presence), ['alice', 'bob', 'carol']);

  ws.push([{ type: 'typing', user: { id: 'bob' }, active: true }, { type: 'typing', user: { id: 'carol' }, active: true }]);
  assert.deepEqual(ids(seen.typing), ['bob', 'carol']);
  ws.push(msg(1, { from: { id: 'bob' } }));
  assert.deepEqual(ids(seen.typing), ['carol'], 'a message ends typing');
  await new Promise((resolve) => setTimeout(resolve, 80));
  assert.deepEqual(ids(seen.typing), [], 'expired');
  ws.push({ type: 'typing', user: { id: 'carol' }, active: true });
  ws.push({ type: 'presence', event: 'leave', user: { id: 'carol' } });
  assert.deepEqual(ids(seen.typing), []);
  assert.deepEqual(ids(seen.presence), ['alice', 'bob']);

  seen.setTyping(true);
  assert.deepEqual(ws.sent.filter((f) => f.type === 'typing'), [{ type: 'typing', active: true }]);
  view.unmount();
  await flush(t);
  assert.equal(ws.closedWith, 1000);
});

test('useInbox: one feed socket, the rooms with unread counts, markRead clears one; unmount closes the feed', async () => {
  const update = (feedSeq, room, seq, unread) =>
    msg(feedSeq, { room: 'user:alice', event: 'room.update', from: null, data: { room, seq, event: 'message', from: null, preview: 'p' + seq, unread } });
  const t = fakes([update(1, 'chat:1', 4, 2), update(2, 'chat:2', 7, 1)]);
  const { room: _room, ...rest } = t.options;
  let box;
  const view = mount(() => (box = useInbox({ ...rest, user: 'alice' })), (b) => h('b', String(b.unread.value)));
  await flush(t);
  assert.equal(t.ws.sockets.length, 1);
  assert.match(t.ws.last().url, /user%3Aalice/);
  assert.deepEqual(box.rooms.value.map((r) => [r.room, r.unread]), [['chat:2', 1], ['chat:1', 2]]);
  assert.equal(box.unread.value, 3);
  assert.equal(view.container.textContent, '3');
  box.markRead('chat:1');
  await nextTick();
  assert.equal(box.unread.value, 1);
  assert.equal(view.container.textContent, '1');
  const inbox = box.inbox.value;
  view.unmount();
  await flush(t);
  assert.equal(inbox.feed.status, 'closed');
});

test('outside a component the composables run in an effect scope: they start at once and stopping the scope closes them', async () => {
  const t = fakes();
  const scope = effectScope();
  const room = scope.run(() => useRoom(t.options));
  assert.ok(room.client.value instanceof RelayClient, 'made at once');
  await flush(t);
  assert.equal(t.ws.sockets.length, 1);
  assert.ok(room.client.value instanceof RelayClient);
  scope.stop();
  await flush(t);
  assert.equal(t.ws.last().closedWith, 1000);
  assert.equal(room.client.value, null);
});
