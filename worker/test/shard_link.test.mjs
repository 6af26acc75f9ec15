// Unit tests of the shard links (worker/shard_link.mjs) against a fake Durable Object state:
// one message per batch per link, targeted entries only to their link, the hello, and the
// shard's side of opening a link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  acceptLink,
  flushLinks,
  hasLinks,
  linkBroadcast,
  linkCloseUsers,
  linkCloseViewer,
  linkRenewViewer,
  linkToViewer,
  openLink,
} from '../shard_link.mjs';
import { acceptSocket, sendToAll } from '../fanout.mjs';

class FakeSocket {
  constructor() {
    this.sent = [];
    this.listeners = {};
    this.accepted = false;
  }
  send(text) {
    this.sent.push(text);
  }
  serializeAttachment(value) {
    this.attachment = value;
  }
  accept() {
    this.accepted = true;
  }
  addEventListener(name, listener) {
    this.listeners[name] = listener;
  }
  batches() {
    return this.sent.map((text) => JSON.parse(text));
  }
}

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

globalThis.WebSocketPair = class {
  constructor() {
    this[0] = new FakeSocket();
    this[1] = new FakeSocket();
  }
};
globalThis.Response = class {
  constructor(body, init) {
    this.status = init.status;
    this.webSocket = init.webSocket;
  }
};

function linked(count) {
  const state = new FakeState();
  const links = [];
  for (let i = 0; i < count; i++) {
    acceptLink(state, `{"shard":${i}}`, '{"t":"hello","seq":3}');
    links.push(state.getWebSockets('link')[i]);
  }
  return { state, links };
}

test('a link is accepted hibernatable, tagged, attached and greeted with the hello', () => {
  const state = new FakeState();
  assert.equal(hasLinks(state), false);
  const response = acceptLink(state, '{"shard":2}', '{"t":"hello","seq":3}');
  assert.equal(response.status, 101);
  const [link] = state.getWebSockets('link');
  assert.equal(link.attachment, '{"shard":2}');
  assert.deepEqual(link.sent, ['{"t":"hello","seq":3}']);
  assert.equal(hasLinks(state), true);
});

test('the frames of one turn reach each link as one batch, in order', async () => {
  const { state, links } = linked(3);
  linkBroadcast(state, 4, 'm4', undefined);
  linkBroadcast(state, 0, 'typing', 'c9');
  linkBroadcast(state, 5, 'm5', undefined);
  await new Promise((resolve) => setTimeout(resolve, 5));
  for (const link of links) {
    assert.equal(link.sent.length, 2, 'the hello, then one batch');
    assert.deepEqual(link.batches()[1], {
      t: 'batch',
      e: [{ s: 4, f: 'm4' }, { s: 0, f: 'typing', x: 'c9' }, { s: 5, f: 'm5' }],
    });
  }
});

test("an ack or a close for a viewer goes only to its shard's link, in order with the rest", () => {
  const { state, links } = linked(2);
  linkBroadcast(state, 7, 'm7', 'c1');
  linkToViewer(state, links[0], 'c1', 'ack7');
  linkCloseViewer(state, links[1], 'c2', 4008, 'rate limit');
  linkRenewViewer(state, links[0], 'c1', 1900000000);
  linkCloseUsers(state, ['bob'], 4003, 'banned');
  flushLinks(state);
  assert.deepEqual(links[0].batches()[1].e, [
    { s: 7, f: 'm7', x: 'c1' },
    { s: 0, f: 'ack7', o: 'c1' },
    { s: 0, f: '', o: 'c1', a: 1900000000 },
    { s: 0, f: '', u: ['bob'], c: [4003, 'banned'] },
  ]);
  assert.deepEqual(links[1].batches()[1].e, [
    { s: 7, f: 'm7', x: 'c1' },
    { s: 0, f: '', o: 'c2', c: [4008, 'rate limit'] },
    { s: 0, f: '', u: ['bob'], c: [4003, 'banned'] },
  ]);
});

test('a long burst leaves in bounded batches', () => {
  const { state, links } = linked(1);
  for (let seq = 1; seq <= 600; seq++) linkBroadcast(state, seq, `m${seq}`, undefined);
  flushLinks(state);
  const sizes = links[0].batches().slice(1).map((b) => b.e.length);
  assert.deepEqual(sizes, [256, 256, 88]);
  const seqs = links[0].batches().slice(1).flatMap((b) => b.e.map((e) => e.s));
  assert.deepEqual(seqs, Array.from({ length: 600 }, (_, i) => i + 1));
});

test('links are counted again once one is gone', () => {
  const state = new FakeState();
  acceptLink(state, '{"shard":0}', 'hello');
  assert.equal(hasLinks(state), true);
  state.sockets = [];
  assert.equal(hasLinks(state), true, 'counted once');
  assert.equal(hasLinks(state, true), false, 'counted again');
});

test("the room's own fan-out leaves its links alone", () => {
  const state = new FakeState();
  acceptLink(state, '{"shard":0}', 'hello');
  const viewer = acceptSocket(state, false, '{}', 'welcome', undefined).server;
  sendToAll(state, 'frame', undefined, 0);
  assert.deepEqual(viewer.sent, ['welcome', 'frame']);
  const [link] = state.getWebSockets('link');
  assert.deepEqual(link.sent, ['hello'], 'no raw frame on a link');
});

test("the shard opens its link to the room's object and hears it with its generation", async () => {
  const socket = new FakeSocket();
  const asked = [];
  const env = {
    ROOMS: {
      getByName(name) {
        return {
          fetch(url, init) {
            asked.push({ name, url, init });
            return Promise.resolve({ webSocket: socket });
          },
        };
      },
    },
  };
  const heard = [];
  const ws = await openLink(env, 'r', 'https://room/shard-link?shard=1', ['x-relay-room'], ['r'], 7,
    (generation, text) => heard.push([generation, text]), (generation) => heard.push([generation, 'closed']));
  assert.equal(ws, socket);
  assert.equal(socket.accepted, true);
  assert.deepEqual(asked, [{ name: 'r', url: 'https://room/shard-link?shard=1',
    init: { headers: { upgrade: 'websocket', 'x-relay-room': 'r' } } }]);
  socket.listeners.message({ data: 'hello' });
  socket.listeners.message({ data: new ArrayBuffer(2) });
  socket.listeners.close({});
  assert.deepEqual(heard, [[7, 'hello'], [7, 'closed']]);
  const refused = { ROOMS: { getByName: () => ({ fetch: async () => ({ webSocket: null }) }) } };
  assert.equal(await openLink(refused, 'r', 'u', [], [], 1, () => {}, () => {}), null);
});
