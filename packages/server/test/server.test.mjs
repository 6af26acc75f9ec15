// RelayServer against a scripted fake fetch: what goes on the wire (signatures, ids, paths),
// which failures are retried and how long it waits, and how failures are typed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { RelayError, RelayServer } from '../dist/index.js';

const WEBHOOK = 'whsec-do-not-leak-1234';
const ADMIN = 'admin-do-not-leak-5678';
const NOW = new Date(1_700_000_000_000);

const json = (status, body, headers = {}) => ({ status, body: JSON.stringify(body), headers });
const relayError = (status, code, message, headers) => json(status, { error: { code, message } }, headers);

/** A fetch that answers from `script` in order (a function entry is called with the request). */
function fakeFetch(script) {
  const calls = [];
  const fetch = async (url, init) => {
    const call = { url, ...init, json: init.body === undefined ? undefined : JSON.parse(init.body) };
    calls.push(call);
    const next = script.shift();
    if (next === undefined) throw new Error('unexpected request');
    const answer = typeof next === 'function' ? await next(call) : next;
    const headers = new Map(Object.entries(answer.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    return { status: answer.status, headers: { get: (name) => headers.get(name.toLowerCase()) ?? null }, text: async () => answer.body };
  };
  return { fetch, calls };
}

function server(script, options = {}) {
  const fake = fakeFetch(script);
  const sleeps = [];
  const relay = new RelayServer({
    url: 'https://relay.example.com',
    webhookSecret: WEBHOOK,
    adminSecret: ADMIN,
    fetch: fake.fetch,
    sleep: async (ms) => void sleeps.push(ms),
    now: () => NOW,
    ...options,
  });
  return { relay, calls: fake.calls, sleeps };
}

function expectedSignature(call) {
  const path = new URL(call.url).pathname;
  const t = Math.floor(NOW.getTime() / 1000);
  const mac = createHmac('sha256', WEBHOOK).update(`${t}.${call.method}.${path}.${call.body ?? ''}`).digest('hex');
  return `t=${t},v2=${mac}`;
}

const assertNoSecret = (error) => {
  const seen = [error.message, error.stack, JSON.stringify(error), String(error), String(error.cause ?? '')].join('\n');
  for (const secret of [WEBHOOK, ADMIN]) assert.ok(!seen.includes(secret), 'a secret leaked into the error');
};

test('broadcast sends a v2-signed body with a generated id and returns per-room results', async () => {
  const { relay, calls } = server([json(200, { results: [{ room: 'a', seq: 7 }, { room: 'city:Саратов', seq: 1 }] })]);
  const outcome = await relay.broadcast(['a', 'city:Саратов', 'a'], 'order:new', { id: 42 });
  assert.equal(calls.length, 1);
  const [call] = calls;
  assert.equal(call.url, 'https://relay.example.com/v1/broadcast');
  assert.equal(call.method, 'POST');
  assert.equal(call.headers['X-Relay-Signature'], expectedSignature(call));
  assert.equal(call.headers.authorization, undefined, 'the secret itself is not sent');
  assert.deepEqual(call.json.rooms, ['a', 'city:Саратов']);
  assert.match(call.json.id, /^[0-9a-f-]{36}$/);
  assert.equal(outcome.id, call.json.id);
  assert.deepEqual(outcome.results, [{ room: 'a', seq: 7 }, { room: 'city:Саратов', seq: 1 }]);
});

test('retries keep the idempotency id and sign each attempt afresh', async () => {
  let t = 1_700_000_000_000;
  const { relay, calls } = server(
    [
      relayError(503, 'internal', 'internal error'),
      () => Promise.reject(new TypeError('fetch failed')),
      { status: 502, body: '<html>bad gateway</html>' },
      json(200, { results: [{ room: 'a', seq: 3 }] }),
    ],
    { now: () => new Date((t += 1000)) },
  );
  const outcome = await relay.broadcast('a', 'e', null, { id: 'order-42' });
  assert.equal(calls.length, 4);
  assert.deepEqual(calls.map((c) => c.json.id), ['order-42', 'order-42', 'order-42', 'order-42']);
  const stamps = calls.map((c) => c.headers['X-Relay-Signature'].match(/^t=(\d+),/)[1]);
  assert.equal(new Set(stamps).size, 4, 'each attempt has its own timestamp');
  assert.deepEqual(outcome, { id: 'order-42', results: [{ room: 'a', seq: 3 }] });

  const generated = server([relayError(500, 'internal', 'x'), json(200, { results: [{ room: 'a', seq: 1 }] })]);
  await generated.relay.broadcast('a', 'e', 1);
  assert.equal(generated.calls[0].json.id, generated.calls[1].json.id, 'a generated id is generated once per call');
});

test('backoff doubles from baseDelayMs, is jittered within [half, full] and capped', async () => {
  const failures = () => Array.from({ length: 5 }, () => relayError(500, 'internal', 'internal error'));
  for (const [random, expected] of [
    [() => 0, [50, 100, 200, 400]],
    [() => 1, [100, 200, 400, 800]],
  ]) {
    const { relay, calls, sleeps } = server(failures(), { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 10_000, random });
    await assert.rejects(relay.getMembers('a'), (error) => {
      assert.equal(error.code, 'internal');
      assert.equal(error.status, 500);
      assert.equal(error.attempts, 5);
      return true;
    });
    assert.equal(calls.length, 5, 'maxAttempts bounds the requests');
    assert.deepEqual(sleeps, expected);
  }
  const capped = server(failures(), { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 150, random: () => 1 });
  await assert.rejects(capped.relay.getMembers('a'));
  assert.deepEqual(capped.sleeps, [100, 150, 150, 150]);
});

test('Retry-After is honoured, in seconds or as a date, and bounded', async () => {
  const seconds = server([relayError(429, 'rate_limited', 'slow down', { 'Retry-After': '3' }), json(200, { room: 'a', members: [] })], {
    random: () => 0,
  });
  await seconds.relay.getMembers('a');
  assert.deepEqual(seconds.sleeps, [3000], 'waits the Retry-After, longer than the backoff');

  const date = new Date(NOW.getTime() + 5000).toUTCString();
  const dated = server([relayError(503, 'internal', 'x', { 'Retry-After': date }), json(200, { room: 'a', members: [] })]);
  await dated.relay.getMembers('a');
  assert.deepEqual(dated.sleeps, [5000]);

  const short = server([relayError(429, 'rate_limited', 'x', { 'Retry-After': '0' }), json(200, { room: 'a', members: [] })], {
    random: () => 1,
  });
  await short.relay.getMembers('a');
  assert.deepEqual(short.sleeps, [250], 'never shorter than the backoff');

  const long = server([relayError(429, 'rate_limited', 'too many', { 'Retry-After': '120' })], { maxRetryAfterSeconds: 30 });
  await assert.rejects(long.relay.getMembers('a'), (error) => {
    assert.equal(error.code, 'rate_limited');
    assert.equal(error.retryAfterSeconds, 120);
    assert.equal(error.attempts, 1);
    return true;
  });
  assert.deepEqual(long.sleeps, [], 'a Retry-After beyond the bound fails at once instead of waiting');
});

test('errors are typed with the relay code, status and message, never retried on 4xx, and carry no secret', async () => {
  const cases = [
    [relayError(401, 'unauthorized', 'signature rejected: no matching v2 signature'), 'unauthorized', 401],
    [relayError(400, 'bad_request', 'rooms must list 1..=100 distinct rooms'), 'bad_request', 400],
    [relayError(413, 'too_large', 'data is larger than 64 KiB'), 'too_large', 413],
    [{ status: 404, body: 'Not Found' }, 'invalid_response', 404],
  ];
  for (const [answer, code, status] of cases) {
    const { relay, calls } = server([answer]);
    await assert.rejects(relay.broadcast(['a'], 'e', 1), (error) => {
      assert.ok(error instanceof RelayError && RelayError.is(error));
      assert.equal(error.name, 'RelayError');
      assert.deepEqual([error.code, error.status, error.attempts], [code, status, 1]);
      if (code !== 'invalid_response') assert.equal(error.message, JSON.parse(answer.body).error.message);
      assertNoSecret(error);
      return true;
    });
    assert.equal(calls.length, 1);
  }
  const network = server([0, 1, 2].map(() => () => Promise.reject(new TypeError('fetch failed'))), { maxAttempts: 3 });
  await assert.rejects(network.relay.stats(), (error) => {
    assert.deepEqual([error.code, error.status, error.attempts], ['network_error', 0, 3]);
    assertNoSecret(error);
    return true;
  });
  assert.equal(network.calls[0].headers.authorization, `Bearer ${ADMIN}`);
});

test('a request without an answer in timeoutMs is aborted and retried', async () => {
  const hang = (call) =>
    new Promise((_, reject) => call.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))));
  const { relay, calls } = server([hang, hang], { maxAttempts: 2, timeoutMs: 20 });
  await assert.rejects(relay.getMembers('a'), (error) => {
    assert.deepEqual([error.code, error.status, error.attempts], ['timeout', 0, 2]);
    return true;
  });
  assert.equal(calls.length, 2);
});

test('rooms that alone failed are sent again with the same id; the rest keep their seq', async () => {
  const { relay, calls } = server([
    json(200, {
      results: [
        { room: 'a', seq: 1 },
        { room: 'b', error: { code: 'internal', message: 'internal error' } },
        { room: 'c', error: { code: 'forbidden', message: 'not allowed' } },
      ],
    }),
    json(200, { results: [{ room: 'b', seq: 9 }] }),
  ]);
  const outcome = await relay.broadcast(['a', 'b', 'c'], 'e', 1, { id: 'k' });
  assert.deepEqual(calls[1].json, { rooms: ['b'], event: 'e', data: 1, id: 'k' });
  assert.deepEqual(outcome.results, [
    { room: 'a', seq: 1 },
    { room: 'b', seq: 9 },
    { room: 'c', error: { code: 'forbidden', message: 'not allowed' } },
  ]);

  const stuck = server(
    [0, 1].map(() => json(200, { results: [{ room: 'a', error: { code: 'internal', message: 'internal error' } }] })),
    { maxAttempts: 2 },
  );
  const last = await stuck.relay.broadcast(['a'], 'e', 1);
  assert.deepEqual(last.results, [{ room: 'a', error: { code: 'internal', message: 'internal error' } }]);
  assert.equal(stuck.calls.length, 2);
});

test('members and disconnect are signed over the percent-encoded path they are sent to', async () => {
  const { relay, calls } = server([
    json(200, { room: 'city:Саратов', members: [{ id: 'ann', role: 'customer' }] }),
    json(200, { room: 'city:Саратов', members: [{ id: 'ann', role: 'customer' }] }),
    json(200, { user: 'bob smith', rooms: 2 }),
  ]);
  await relay.setMembers('city:Саратов', [{ id: 'ann', role: 'customer' }]);
  assert.deepEqual(await relay.getMembers('city:Саратов'), { room: 'city:Саратов', members: [{ id: 'ann', role: 'customer' }] });
  assert.deepEqual(await relay.disconnectUser('bob smith', 'banned'), { user: 'bob smith', rooms: 2 });
  const paths = calls.map((c) => `${c.method} ${new URL(c.url).pathname}`);
  assert.deepEqual(paths, [
    'PUT /v1/rooms/city%3A%D0%A1%D0%B0%D1%80%D0%B0%D1%82%D0%BE%D0%B2/members',
    'GET /v1/rooms/city%3A%D0%A1%D0%B0%D1%80%D0%B0%D1%82%D0%BE%D0%B2/members',
    'POST /v1/users/bob%20smith/disconnect',
  ]);
  for (const call of calls) assert.equal(call.headers['X-Relay-Signature'], expectedSignature(call));
  assert.equal(calls[1].body, undefined);
  assert.deepEqual(calls[2].json, { reason: 'banned' });
  await assert.rejects(relay.getMembers('..'), (e) => e.code === 'invalid_argument');
  await assert.rejects(relay.setMembers('a', 'ann'), (e) => e.code === 'invalid_argument');
});

test('bans are signed over their path and until is whole unix seconds', async () => {
  const { relay, calls } = server([
    json(200, { room: 'chat:1', user: 'eve smith', until: 1900000000 }),
    json(200, { room: 'chat:1', user: 'eve smith', until: null }),
    json(200, { room: 'chat:1', user: 'eve smith', lifted: true }),
    json(200, { room: 'chat:1', bans: [] }),
  ]);
  await relay.ban('chat:1', 'eve smith', { until: new Date(1900000000500) });
  await relay.ban('chat:1', 'eve smith');
  assert.deepEqual(await relay.unban('chat:1', 'eve smith'), { room: 'chat:1', user: 'eve smith', lifted: true });
  assert.deepEqual(await relay.bans('chat:1'), { room: 'chat:1', bans: [] });
  const paths = calls.map((c) => `${c.method} ${new URL(c.url).pathname}`);
  assert.deepEqual(paths, [
    'PUT /v1/rooms/chat%3A1/bans/eve%20smith',
    'PUT /v1/rooms/chat%3A1/bans/eve%20smith',
    'DELETE /v1/rooms/chat%3A1/bans/eve%20smith',
    'GET /v1/rooms/chat%3A1/bans',
  ]);
  for (const call of calls) assert.equal(call.headers['X-Relay-Signature'], expectedSignature(call));
  assert.deepEqual(calls[0].json, { until: 1900000000 });
  assert.deepEqual(calls[1].json, {});
  await assert.rejects(relay.ban('chat:1', 'eve', { until: 1.5 }), (e) => e.code === 'invalid_argument');
  assert.equal(calls.length, 4, 'an invalid until sends nothing');
});

test('bearer mode, user tokens and admin calls put the right credential in Authorization', async () => {
  const { relay, calls } = server(
    [
      json(200, { results: [{ room: 'a', seq: 1 }] }),
      json(200, { messages: [], has_more: false }),
      json(200, { seq: 2, id: 'x', ts: 't', duplicate: false }),
    ],
    { auth: 'bearer' },
  );
  await relay.broadcast('a', 'e', 1);
  await relay.history('a', { token: 'user-jwt', after: 5, limit: 10 });
  await relay.publish('a', { text: 'hi' }, { token: 'user-jwt', event: 'note' });
  assert.equal(calls[0].headers.authorization, `Bearer ${WEBHOOK}`);
  assert.equal(calls[0].headers['X-Relay-Signature'], undefined);
  assert.equal(calls[1].url, 'https://relay.example.com/v1/rooms/a/messages?after=5&limit=10');
  assert.equal(calls[1].headers.authorization, 'Bearer user-jwt');
  assert.equal(calls[2].json.event, 'note');
  assert.match(calls[2].json.cid, /^[0-9a-f-]{36}$/);

  const noAdmin = new RelayServer({ url: 'https://relay.example.com', webhookSecret: WEBHOOK, fetch: fakeFetch([]).fetch });
  await assert.rejects(noAdmin.stats(), (e) => e.code === 'invalid_argument');
  assert.throws(() => new RelayServer({ url: 'https://relay.example.com/prefix', webhookSecret: WEBHOOK }), (e) => e.code === 'invalid_argument');
  assert.throws(() => new RelayServer({ url: 'https://relay.example.com', webhookSecret: '' }), (e) => e.code === 'invalid_argument');
  assert.throws(() => new RelayServer({ url: 'https://x', webhookSecret: WEBHOOK, maxAttempts: 0 }), (e) => e.code === 'invalid_argument');
  assert.ok(!JSON.stringify(relay).includes(WEBHOOK) && !JSON.stringify(relay).includes(ADMIN));
});

test('data that JSON cannot carry is refused as invalid_argument before anything is sent', async () => {
  const { relay, calls } = server([]);
  const circular = {};
  circular.self = circular;
  for (const data of [{ n: 1n }, circular]) {
    await assert.rejects(relay.broadcast('a', 'e', data), (e) => RelayError.is(e) && e.code === 'invalid_argument');
    await assert.rejects(relay.publish('a', data, { token: 't' }), (e) => RelayError.is(e) && e.code === 'invalid_argument');
  }
  assert.equal(calls.length, 0);
});

test('presence pages by user id: limit and after go in the query, next comes back', async () => {
  const { relay, calls } = server([
    json(200, { room: 'big:1', users: [{ id: 'ann' }, { id: 'bob' }], connections: 3, next: 'bob' }),
    json(200, { room: 'big:1', users: [{ id: 'cy' }], connections: 3, next: null }),
  ]);
  const first = await relay.presence('big:1', { limit: 2 });
  assert.equal(first.next, 'bob');
  const second = await relay.presence('big:1', { limit: 2, after: first.next });
  assert.deepEqual(second.users, [{ id: 'cy' }]);
  assert.equal(second.next, null);
  assert.deepEqual(
    calls.map((c) => { const u = new URL(c.url); return `${u.pathname}${u.search}`; }),
    ['/v1/rooms/big%3A1/presence?limit=2', '/v1/rooms/big%3A1/presence?limit=2&after=bob'],
  );
  for (const limit of [0, 1001, 1.5]) {
    await assert.rejects(relay.presence('big:1', { limit }), (e) => e.code === 'invalid_argument');
  }
  assert.equal(calls.length, 2, 'a bad limit never reaches the relay');
});

test('a broadcast answer that leaves out a room keeps the rooms it answered', async () => {
  const { relay } = server([json(200, { results: [{ room: 'a', seq: 7 }] })]);
  const outcome = await relay.broadcast(['a', 'b'], 'order:new', { id: 42 }, { id: 'order-42' });
  assert.deepEqual(outcome.results[0], { room: 'a', seq: 7 });
  assert.equal(outcome.results[1].room, 'b');
  assert.ok(outcome.results[1].error, 'the room left out is reported failed');
});
