// The React bindings (@edge-relay/client/react) rendered with react-dom into happy-dom's
// document: one client per component under StrictMode, state from the client's events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Window } from 'happy-dom';
import { FakeClock, fakeFetch, fakeSockets, historyOf, msg } from './fakes.mjs';

const window = new Window({ url: 'http://page.test/' });
for (const name of ['window', 'document', 'HTMLElement', 'HTMLIFrameElement', 'Node', 'Element', 'Event', 'MutationObserver']) {
  globalThis[name] = name === 'window' ? window : window[name];
}
globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const { createElement: h, StrictMode, act } = await import('react');
const { createRoot } = await import('react-dom/client');
const { useRoom, usePresence, useTyping, useInbox } = await import('../dist/react.js');
const { RelayClient } = await import('../dist/index.js');

after(() => window.happyDOM.close());

/** Fakes for the clients the hooks make, and what they made. */
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

/** Renders `element` (in StrictMode unless told otherwise); `seen` gets each render's value. */
async function render(component, props, { strict = true } = {}) {
  const container = document.createElement('div');
  const root = createRoot(container);
  const draw = async (next) => {
    const element = h(component, next);
    await act(async () => root.render(strict ? h(StrictMode, null, element) : element));
  };
  await draw(props);
  return { container, draw, unmount: () => act(async () => root.unmount()) };
}

/** Lets the fake clients' promise chains and the hooks' timers run, inside act. */
const flush = (t) => act(async () => {
  await t.clock.tick(0);
  await new Promise((resolve) => setTimeout(resolve, 5));
});

test('useRoom under StrictMode: one client, one socket, no reconnect; state follows the client; unmounting closes it', async () => {
  const t = fakes();
  const seen = [];
  let asked = 0; // getToken calls: one per client made
  function Room({ options }) {
    const room = useRoom(options);
    seen.push(room);
    return h('ul', null, room.messages.map((m) => h('li', { key: m.seq }, m.data.text)));
  }
  const options = { ...t.options, token: undefined, getToken: () => (asked++, 'T1') };
  const view = await render(Room, { options });
  await flush(t);
  assert.equal(asked, 1, 'one client despite the double mount');
  assert.equal(t.ws.sockets.length, 1, 'one socket');
  const client = seen.at(-1).client;
  assert.ok(client instanceof RelayClient, 'the same class as the main entry');
  assert.equal(seen.at(-1).status, 'connecting');

  await act(async () => t.ws.last().welcome({ seq: 0 }));
  assert.equal(seen.at(-1).status, 'open');
  await act(async () => t.ws.last().push([msg(1), msg(2)]));
  assert.equal(view.container.textContent, 'm1m2');

  // A new options object (and a new getToken) each render: the same client, no new socket.
  await view.draw({ options: { ...options, getToken: () => (asked++, 'T1') } });
  await flush(t);
  assert.equal(seen.at(-1).client, client);
  assert.equal(asked, 1);
  assert.equal(t.ws.sockets.length, 1);
  assert.equal(t.ws.last().closedWith, undefined, 'the socket was never closed');

  await view.unmount();
  await flush(t);
  assert.equal(client.status, 'closed');
  assert.equal(t.ws.last().closedWith, 1000);
});

test('useRoom: another room closes the old client and connects the new one; history loads once, before live', async () => {
  const t = fakes(Array.from({ length: 5 }, (_, i) => msg(i + 1)));
  const seen = [];
  function Room({ options }) {
    seen.push(useRoom(options));
    return null;
  }
  const view = await render(Room, { options: { ...t.options, history: 3 } });
  await flush(t);
  await act(async () => t.ws.last().welcome({ seq: 5 }));
  await act(async () => t.ws.last().push(msg(6)));
  await flush(t);
  assert.deepEqual(seen.at(-1).messages.map((m) => m.seq), [3, 4, 5, 6]);
  assert.equal(seen.at(-1).hasMore, true);
  assert.equal(t.calls.filter((c) => c.query.before).length, 1, 'loaded once under StrictMode');
  await act(async () => seen.at(-1).loadOlder(5));
  assert.deepEqual(seen.at(-1).messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
  assert.equal(seen.at(-1).hasMore, false);

  const first = seen.at(-1).client;
  await view.draw({ options: { ...t.options, room: 'chat:2' } });
  await flush(t);
  assert.equal(first.status, 'closed');
  assert.equal(t.ws.sockets.length, 2);
  assert.match(t.ws.last().url, /chat%3A2/);
  assert.notEqual(seen.at(-1).client, first);
  assert.deepEqual(seen.at(-1).messages, [], 'the new room starts empty');
  await view.draw({ options: null });
  await flush(t);
  assert.equal(seen.at(-1).client, null);
  assert.equal(seen.at(-1).status, 'idle');
  await view.unmount();
});

test('useRoom calls the latest getToken without reconnecting', async () => {
  const t = fakes();
  const tokens = [];
  const seen = [];
  function Room({ token }) {
    seen.push(useRoom({ ...t.options, token: undefined, getToken: () => (tokens.push(token), token) }));
    return null;
  }
  const view = await render(Room, { token: 'a.first.x' });
  await flush(t);
  await view.draw({ token: 'a.second.x' });
  await act(async () => t.ws.last().serverClose(4001, 'token expired'));
  await act(async () => t.clock.tick(1000)); // the first retry comes after 250 ms (random 0.5)
  assert.deepEqual(tokens, ['a.first.x', 'a.second.x']);
  assert.equal(t.ws.last().token, 'a.second.x');
  assert.equal(t.ws.sockets.length, 2);
  await view.unmount();
});

test('usePresence and useTyping follow the room: joins and leaves, typing that expires, ends with a message or a false', async () => {
  const t = fakes();
  const seen = [];
  function Room() {
    const { client } = useRoom(t.options);
    const presence = usePresence(client);
    const { typing, setTyping } = useTyping(client, { expireMs: 50 });
    seen.push({ presence: presence.map((u) => u.id), typing: typing.map((u) => u.id), setTyping });
    return null;
  }
  const view = await render(Room, {});
  await flush(t);
  const ws = t.ws.last();
  await act(async () => ws.welcome({ seq: 0, presence: [{ id: 'alice' }, { id: 'bob' }] }));
  assert.deepEqual(seen.at(-1).presence, ['alice', 'bob']);
  await act(async () => ws.push({ type: 'presence', event: 'join', user: { id: 'carol' } }));
  assert.deepEqual(seen.at(-1).presence, ['alice', 'bob', 'carol']);

  await act(async () => ws.push([{ type: 'typing', user: { id: 'bob' }, active: true }, { type: 'typing', user: { id: 'carol' }, active: true }]));
  assert.deepEqual(seen.at(-1).typing, ['bob', 'carol']);
  await act(async () => ws.push(msg(1, { from: { id: 'bob' } })));
  assert.deepEqual(seen.at(-1).typing, ['carol'], 'a message ends typing');
  await act(async () => new Promise((resolve) => setTimeout(resolve, 80)));
  assert.deepEqual(seen.at(-1).typing, [], 'expired');
  await act(async () => ws.push({ type: 'typing', user: { id: 'carol' }, active: true }));
  await act(async () => ws.push({ type: 'presence', event: 'leave', user: { id: 'carol' } }));
  assert.deepEqual(seen.at(-1).typing, []);
  assert.deepEqual(seen.at(-1).presence, ['alice', 'bob']);

  await act(async () => seen.at(-1).setTyping(true));
  assert.deepEqual(ws.sent.filter((f) => f.type === 'typing'), [{ type: 'typing', active: true }]);
  await view.unmount();
});

test('useInbox: one feed socket under StrictMode, the rooms with unread counts, markRead clears one', async () => {
  const update = (feedSeq, room, seq, unread) =>
    msg(feedSeq, { room: 'user:alice', event: 'room.update', from: null, data: { room, seq, event: 'message', from: null, preview: 'p' + seq, unread } });
  const t = fakes([update(1, 'chat:1', 4, 2), update(2, 'chat:2', 7, 1)]);
  const seen = [];
  function Rooms() {
    const { room: _room, ...rest } = t.options;
    seen.push(useInbox({ ...rest, user: 'alice' }));
    return null;
  }
  const view = await render(Rooms, {});
  await flush(t);
  assert.equal(t.ws.sockets.length, 1);
  assert.match(t.ws.last().url, /user%3Aalice/);
  assert.deepEqual(seen.at(-1).rooms.map((r) => [r.room, r.unread]), [['chat:2', 1], ['chat:1', 2]]);
  assert.equal(seen.at(-1).unread, 3);
  await act(async () => seen.at(-1).markRead('chat:1'));
  assert.equal(seen.at(-1).unread, 1);
  const box = seen.at(-1).inbox;
  await view.unmount();
  await flush(t);
  assert.equal(box.feed.status, 'closed');
});
