// The token stays out of every URL; a missing WebSocket implementation is a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, msg } from './fakes.mjs';
import { RelayClient } from '../dist/index.js';

const SECRET = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

test('the token travels in the subprotocol and the Authorization header, never in a URL', async () => {
  const messages = [msg(1), msg(2), msg(3)];
  const t = setup({
    client: { token: SECRET, maxFailures: 1, since: 1 },
    http: (c) => {
      if (c.method === 'GET') return { status: 200, body: { messages: messages.filter((m) => m.seq > Number(c.query.after ?? 0)), has_more: false } };
      return { status: 200, body: { seq: 4, id: 'id4', ts: 'x', duplicate: false } };
    },
  });
  await t.clock.tick(0);
  assert.deepEqual(t.ws.last().protocols, ['relay.v1', 'bearer.' + SECRET]);
  t.ws.last().fail(); // falls back to polling: GET history and POST publish over HTTP
  await t.clock.tick(0);
  assert.equal(t.client.status, 'polling');
  await t.client.send('over http');
  await t.client.history({ before: 3 });
  await RelayClient.history({ url: 'http://relay.test', room: 'chat:1', token: SECRET, fetch: async (url, init) => {
    t.calls.push({ method: 'GET', url: new URL(url), auth: init.headers.authorization });
    return { ok: true, status: 200, json: async () => ({ messages: [], has_more: false }), headers: { get: () => null } };
  } });
  await t.next(); // the socket is retried in the background
  const methods = new Set(t.calls.map((c) => c.method));
  assert.deepEqual([...methods].sort(), ['GET', 'POST']);
  assert.ok(t.calls.every((c) => c.auth === 'Bearer ' + SECRET), 'every HTTP call sends Authorization: Bearer');
  const urls = t.urls();
  assert.ok(urls.length >= 6, 'sockets and requests were made: ' + urls.length);
  for (const u of urls) {
    assert.ok(!u.includes(SECRET) && !u.includes(encodeURIComponent(SECRET)), 'token in ' + u);
    assert.ok(!new URL(u).searchParams.has('token'), 'token parameter in ' + u);
  }
});

test('without a WebSocket implementation the constructor throws instead of polling', () => {
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = undefined;
  try {
    const options = { url: 'http://relay.test', room: 'chat:1', token: 'T', events: null };
    assert.throws(() => new RelayClient(options), { name: 'TypeError', message: /no WebSocket implementation/ });
    assert.throws(() => RelayClient.connect({ ...options, WebSocket: undefined }), /no WebSocket implementation/);
    class Given {
      constructor(url, protocols) {
        Given.opened = { url, protocols };
      }
      close() {}
    }
    const client = RelayClient.connect({ ...options, WebSocket: Given });
    assert.equal(client.status, 'connecting');
    client.close();
  } finally {
    globalThis.WebSocket = saved;
  }
});

test('a WebSocket constructor that throws (bad url or token characters) stops with an error that does not quote the token', async () => {
  class Refusing {
    constructor(url, protocols) {
      throw new SyntaxError("The subprotocol '" + protocols[1] + "' is invalid.");
    }
  }
  const t = setup({ client: { token: 'not a jwt', WebSocket: Refusing } });
  await t.clock.tick(60000);
  assert.equal(t.client.status, 'closed');
  const [err] = t.of('error');
  assert.equal(err.code, 'bad_request');
  assert.ok(!err.message.includes('not a jwt'), err.message);
  assert.equal(t.clock.pending.length, 0, 'no retry');
});
