// Tokens and request signatures of the built package, checked against HMACs computed here
// independently with node:crypto and against the relay's own reference vector.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { signRequest, signToken, verifySignature, RelayError } from '../dist/index.js';

const SECRET = 'webhook-secret';
const T = 1_700_000_000;
const at = (seconds) => new Date(seconds * 1000);
const hmacHex = (secret, message) => createHmac('sha256', secret).update(message).digest('hex');

test('signRequest gives the v2 header the relay computes (its reference vector)', async () => {
  // The same vector as src/webhook.rs `macs_match_a_reference_hmac` (taken from openssl there).
  const header = await signRequest({ secret: SECRET, method: 'POST', path: '/v1/broadcast', body: '{}', now: at(T) });
  assert.equal(header, 't=1700000000,v2=9d13786b9d891af5edcea3fb8cd4d3afe20acf1c50cfcfd4aa70dc32c37c868a');
});

test('signRequest covers "<t>.<METHOD>.<path>.<body>" byte for byte', async () => {
  const body = JSON.stringify({ rooms: ['city:Саратов'], event: 'order:new', data: { text: 'é€😀' } });
  const path = '/v1/rooms/city%3A%D0%A1/members';
  const cases = [
    { method: 'PUT', path, body, message: `${T}.PUT.${path}.${body}` },
    // Lower-case methods are signed as they go on the wire; the query is not signed.
    { method: 'get', path: `${path}?x=1`, body: undefined, message: `${T}.GET.${path}.` },
    { method: 'POST', path: '/v1/broadcast', body: new TextEncoder().encode(body), message: `${T}.POST./v1/broadcast.${body}` },
  ];
  for (const c of cases) {
    const header = await signRequest({ secret: SECRET, method: c.method, path: c.path, body: c.body, now: at(T) });
    assert.equal(header, `t=${T},v2=${hmacHex(SECRET, c.message)}`, c.message);
  }
  const bytesSecret = await signRequest({ secret: new TextEncoder().encode(SECRET), method: 'PUT', path, body, now: at(T) });
  assert.equal(bytesSecret, `t=${T},v2=${hmacHex(SECRET, `${T}.PUT.${path}.${body}`)}`);
});

test('verifySignature follows the relay: v2 bound to method, path and body, within 300 s', async () => {
  const path = '/v1/rooms/city%3A%D0%A1%D0%B0/members';
  const body = '[{"id":"ann"}]';
  const header = await signRequest({ secret: SECRET, method: 'PUT', path, body, now: at(T) });
  const verify = (overrides) =>
    verifySignature({ secret: SECRET, header, method: 'PUT', path, body, now: at(T), ...overrides });
  assert.equal(await verify({}), true);
  assert.equal(await verify({ now: at(T + 300) }), true);
  assert.equal(await verify({ now: at(T + 301) }), false);
  assert.equal(await verify({ now: at(T - 301) }), false);
  assert.equal(await verify({ now: at(T + 10), toleranceSeconds: 5 }), false);
  assert.equal(await verify({ method: 'GET' }), false);
  assert.equal(await verify({ path: '/v1/rooms/B/members' }), false);
  assert.equal(await verify({ body: '[]' }), false);
  assert.equal(await verify({ secret: 'other' }), false);
  assert.equal(await verify({ header: undefined }), false);
  // The decoded path may be signed instead of the path as sent.
  const decoded = await signRequest({ secret: SECRET, method: 'PUT', path: '/v1/rooms/city:Са/members', body, now: at(T) });
  assert.equal(await verify({ header: decoded }), true);
  // Rotation: any matching element is enough; upper-case hex is hex.
  const mac = header.split(',v2=')[1];
  assert.equal(await verify({ header: `t=${T},v2=${'00'.repeat(32)},v2=${mac.toUpperCase()}` }), true);
  // Hex must be two digits per byte: a sign or a dropped digit is refused.
  assert.equal(await verify({ header: `t=${T},v2=+${mac.slice(1)}` }), false);
  assert.equal(await verify({ header: `t=${T},v2=${mac.slice(1)}` }), false);
  assert.equal(await verify({ header: `v2=${mac}` }), false);
});

test('verifySignature takes v1 (body only) only when asked to', async () => {
  const body = '{"rooms":["a"],"event":"e","data":1}';
  const header = `t=${T},v1=${hmacHex(SECRET, `${T}.${body}`)}`;
  const base = { secret: SECRET, header, method: 'POST', path: '/v1/broadcast', body, now: at(T) };
  assert.equal(await verifySignature(base), false);
  assert.equal(await verifySignature({ ...base, acceptV1: true }), true);
  assert.equal(await verifySignature({ ...base, acceptV1: true, body: '{}' }), false);
});

test('signToken makes an HS256 JWT with the claims the relay reads', async () => {
  const secret = 'jwt-secret';
  const token = await signToken({
    secret,
    sub: 'alice',
    name: 'Alice',
    role: 'manager',
    rooms: ['chat:*', 'support:7'],
    ttlSeconds: 600,
    now: at(T),
  });
  const [header, payload, signature] = token.split('.');
  assert.equal(createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url'), signature);
  assert.deepEqual(JSON.parse(Buffer.from(header, 'base64url')), { alg: 'HS256', typ: 'JWT' });
  assert.deepEqual(JSON.parse(Buffer.from(payload, 'base64url')), {
    sub: 'alice',
    name: 'Alice',
    role: 'manager',
    rooms: ['chat:*', 'support:7'],
    iat: T,
    exp: T + 600,
  });
  assert.doesNotMatch(token, /[=+/]/, 'base64url without padding');
});

test('signToken encodes non-ASCII claims and every base64 tail length', async () => {
  for (const sub of ['a', 'ab', 'abc', 'Саратов', '😀x']) {
    const token = await signToken({ secret: 's', sub, rooms: [], ttlSeconds: 1, now: at(T), audience: ['x', 'y'], issuer: 'me' });
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
    assert.equal(claims.sub, sub);
    assert.deepEqual([claims.iss, claims.aud], ['me', ['x', 'y']]);
  }
});

test('signToken refuses what the relay would refuse, without sending anything', async () => {
  const base = { secret: 's', sub: 'a', rooms: ['*'], ttlSeconds: 60 };
  for (const bad of [
    { sub: '' },
    { sub: 'x'.repeat(257) },
    { ttlSeconds: 0 },
    { ttlSeconds: 1.5 },
    { secret: '' },
    { rooms: Array.from({ length: 257 }, (_, i) => `r${i}`) },
    { rooms: 'chat:1' },
  ]) {
    await assert.rejects(signToken({ ...base, ...bad }), (error) => {
      assert.ok(error instanceof RelayError);
      assert.equal(error.code, 'invalid_argument');
      assert.equal(error.status, 0);
      return true;
    }, JSON.stringify(bad).slice(0, 60));
  }
});
