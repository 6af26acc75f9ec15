// Against a real relay (wrangler dev) configured with identity-provider keys the way scripts/test
// does it (scripts/idp-test-keys: RSA, P-256 and Ed25519 keys inline in JWT_PUBLIC_KEYS and
// served at JWT_JWKS_URL): a token from signToken with each private key, as JWK and as
// CryptoKey, opens a socket and reads history; a token signed by a key the relay does not have,
// under a kid it does, is refused with 401. Needs RELAY_URL, IDP_INLINE_KEYS and IDP_URL_KEYS
// (the private JWKs); without them every test is reported as skipped (not passed).
import { describe, test as nodeTest, after } from 'node:test';
import assert from 'node:assert/strict';
import { RelayServer, signToken } from '../dist/index.js';

const { RELAY_URL, IDP_INLINE_KEYS, IDP_URL_KEYS } = process.env;
const missing = ['RELAY_URL', 'IDP_INLINE_KEYS', 'IDP_URL_KEYS'].filter((name) => !process.env[name]);
const skip = missing.length > 0 && `SKIPPED: needs a relay with identity-provider keys (${missing.join(', ')} not set)`;
const test = (name, fn) => nodeTest(name, { skip }, fn);
const WAIT_MS = 10_000;
const IMPORT = {
  RSA: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  EC: { name: 'ECDSA', namedCurve: 'P-256' },
  OKP: { name: 'Ed25519' },
};

/** The welcome frame of a socket to `room` opened with `token`, or a rejection within WAIT_MS. */
function welcome(room, token, sockets) {
  const url = `${RELAY_URL.replace(/^http/, 'ws')}/v1/rooms/${encodeURIComponent(room)}/ws`;
  const socket = new WebSocket(url, ['relay.v1', `bearer.${token}`]);
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no welcome in ${room} within ${WAIT_MS} ms`)), WAIT_MS);
    socket.addEventListener('message', (event) => {
      const frames = [JSON.parse(event.data)].flat();
      const found = frames.find((f) => f.type === 'welcome');
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    socket.addEventListener('close', (event) => {
      clearTimeout(timer);
      reject(new Error(`closed before the welcome: ${event.code}`));
    });
  });
}

describe(`signToken with identity-provider keys against a relay${skip ? ` (${skip})` : ''}`, () => {
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const sets = skip ? {} : { inline: JSON.parse(IDP_INLINE_KEYS), served: JSON.parse(IDP_URL_KEYS) };
  const relay = skip ? undefined : new RelayServer({ url: RELAY_URL, webhookSecret: 'unused: user-token routes only' });
  const sockets = [];
  after(() => sockets.forEach((s) => s.close()));

  test('the relay accepts RS256, ES256 and EdDSA tokens from a private JWK, inline and from the JWKS URL', async () => {
    for (const [set, keys] of Object.entries(sets)) {
      assert.equal(keys.length, 3, `${set}: an RSA, a P-256 and an Ed25519 key`);
      for (const jwk of keys) {
        const user = `keys-${run}-${jwk.kty}`;
        const room = `keys-${run}:${set}-${jwk.kty}`;
        const token = await signToken({ privateKey: jwk, sub: user, name: 'Keys', rooms: [room], ttlSeconds: 300 });
        const frame = await welcome(room, token, sockets);
        assert.equal(frame.user.id, user, `${set} ${jwk.kid}`);
        assert.equal(frame.user.name, 'Keys');
        const page = await relay.history(room, { token, after: 0 });
        assert.deepEqual(page.messages, [], `${set} ${jwk.kid}`);
      }
    }
  });

  test('a private CryptoKey with the kid given works the same', async () => {
    for (const jwk of sets.served) {
      const { kid, ...material } = jwk;
      const privateKey = await crypto.subtle.importKey('jwk', material, IMPORT[jwk.kty], false, ['sign']);
      const room = `keys-${run}:crypto-${jwk.kty}`;
      const token = await signToken({ privateKey, kid, sub: `keys-${run}`, rooms: [room], ttlSeconds: 300 });
      const page = await relay.history(room, { token, after: 0 });
      assert.deepEqual(page.messages, [], kid);
    }
  });

  test('a key the relay does not have, under a kid it has, is 401', async () => {
    const room = `keys-${run}:refused`;
    const named = sets.inline.find((jwk) => jwk.kty === 'OKP');
    const stranger = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const token = await signToken({ privateKey: stranger.privateKey, kid: named.kid, sub: `keys-${run}`, rooms: [room], ttlSeconds: 300 });
    await assert.rejects(relay.history(room, { token, after: 0 }), (error) => {
      assert.deepEqual([error.code, error.status], ['unauthorized', 401]);
      return true;
    });
    await assert.rejects(welcome(room, token, sockets));
  });
});
