// signToken with a private key (RS256, ES256, EdDSA), as CryptoKey and as JWK, checked by
// verifying each token with the public key through node:crypto (not the WebCrypto code that
// signed it), and the keys and kids the relay would not accept refused before anything is signed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { RelayError, signToken } from '../dist/index.js';

const { subtle } = globalThis.crypto;
const T = 1_700_000_000;
const claims = { sub: 'alice', name: 'Alice', role: 'agent', rooms: ['chat:*'], ttlSeconds: 600, now: new Date(T * 1000) };
const KINDS = {
  RS256: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  EdDSA: { name: 'Ed25519' },
};
const pairs = Object.fromEntries(
  await Promise.all(Object.entries(KINDS).map(async ([alg, params]) => [alg, await subtle.generateKey(params, true, ['sign', 'verify'])])),
);

const decode = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

/** Whether `token` verifies with `publicKey` (a CryptoKey) under node:crypto, as the relay checks JWS. */
async function verifies(token, publicKey, alg) {
  const [header, payload, signature] = token.split('.');
  const key = createPublicKey({ key: await subtle.exportKey('jwk', publicKey), format: 'jwk' });
  const data = Buffer.from(`${header}.${payload}`);
  const sig = Buffer.from(signature, 'base64url');
  if (alg === 'RS256') return verify('sha256', data, key, sig);
  if (alg === 'ES256') return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  return verify(null, data, key, sig);
}

async function refused(options, pattern) {
  await assert.rejects(signToken({ ...claims, ...options }), (error) => {
    assert.ok(RelayError.is(error), String(error));
    assert.equal(error.code, 'invalid_argument');
    assert.match(error.message, pattern);
    return true;
  });
}

test('a private CryptoKey signs a token its public key verifies, with the alg and kid in the header', async () => {
  for (const [alg, pair] of Object.entries(pairs)) {
    const token = await signToken({ ...claims, privateKey: pair.privateKey, kid: `key-${alg}` });
    const [header, payload] = token.split('.');
    assert.deepEqual(decode(header), { alg, typ: 'JWT', kid: `key-${alg}` });
    assert.deepEqual(decode(payload), { sub: 'alice', name: 'Alice', role: 'agent', rooms: ['chat:*'], iat: T, exp: T + 600 });
    assert.equal(await verifies(token, pair.publicKey, alg), true, alg);
    // Another key of the same kind does not verify it: the signature is the key's.
    const other = await subtle.generateKey(KINDS[alg], true, ['sign', 'verify']);
    assert.equal(await verifies(token, other.publicKey, alg), false, `${alg} with another key`);
    // A changed payload does not verify either.
    const forged = [header, Buffer.from(JSON.stringify({ ...decode(payload), rooms: ['*'] })).toString('base64url'), token.split('.')[2]];
    assert.equal(await verifies(forged.join('.'), pair.publicKey, alg), false, `${alg} with a changed payload`);
  }
});

test('a private JWK signs too; its kid is used unless kid is given', async () => {
  for (const [alg, pair] of Object.entries(pairs)) {
    // As an identity provider writes it (scripts/idp-test-keys): kid, use, and alg for RSA.
    const jwk = { ...(await subtle.exportKey('jwk', pair.privateKey)), kid: `jwk-${alg}`, use: 'sig' };
    delete jwk.key_ops;
    const own = await signToken({ ...claims, privateKey: jwk });
    assert.deepEqual(decode(own.split('.')[0]), { alg, typ: 'JWT', kid: `jwk-${alg}` });
    assert.equal(await verifies(own, pair.publicKey, alg), true, alg);
    const renamed = await signToken({ ...claims, privateKey: jwk, kid: 'chosen' });
    assert.equal(decode(renamed.split('.')[0]).kid, 'chosen');
    // Without any kid the header has none (fine for a relay with a single public key).
    const { kid: _kid, ...unnamed } = jwk;
    assert.deepEqual(decode((await signToken({ ...claims, privateKey: unnamed })).split('.')[0]), { alg, typ: 'JWT' });
  }
});

test('keys the relay would not verify are refused', async () => {
  const pss = await subtle.generateKey({ ...KINDS.RS256, name: 'RSA-PSS' }, true, ['sign', 'verify']);
  await refused({ privateKey: pss.privateKey }, /RS256, ES256 and EdDSA/);
  const sha512 = await subtle.generateKey({ ...KINDS.RS256, hash: 'SHA-512' }, true, ['sign', 'verify']);
  await refused({ privateKey: sha512.privateKey }, /SHA-256/);
  const small = await subtle.generateKey({ ...KINDS.RS256, modulusLength: 1024 }, true, ['sign', 'verify']);
  await refused({ privateKey: small.privateKey }, /2048 to 4096 bits/);
  await refused({ privateKey: await subtle.exportKey('jwk', small.privateKey) }, /2048 to 4096 bits/);
  const p384 = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify']);
  await refused({ privateKey: p384.privateKey }, /P-256/);
  await refused({ privateKey: await subtle.exportKey('jwk', p384.privateKey) }, /RSA, EC P-256 or OKP Ed25519/);
  const hmac = await subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
  await refused({ privateKey: hmac }, /private key/);
  await refused({ privateKey: await subtle.exportKey('jwk', hmac) }, /RSA, EC P-256 or OKP Ed25519/);
});

test('public keys, mismatched JWK algs, bad kids and a secret next to a key are refused', async () => {
  const ed = pairs.EdDSA;
  await refused({ privateKey: ed.publicKey }, /private key/);
  await refused({ privateKey: await subtle.exportKey('jwk', ed.publicKey) }, /public JWK/);
  const esJwk = await subtle.exportKey('jwk', pairs.ES256.privateKey);
  await refused({ privateKey: { ...esJwk, alg: 'RS256' } }, /does not fit/);
  await refused({ privateKey: { ...esJwk, use: 'enc' } }, /use "enc"/);
  await refused({ privateKey: { ...esJwk, d: 'AAAA' } }, /not a usable ES256 JWK/);
  const notExtractable = await subtle.importKey('jwk', esJwk, KINDS.ES256, false, ['sign']);
  assert.ok(await signToken({ ...claims, privateKey: notExtractable }));
  await refused({ privateKey: ed.privateKey, kid: '' }, /kid/);
  await refused({ privateKey: ed.privateKey, kid: 'k'.repeat(257) }, /256 bytes/);
  assert.ok(await signToken({ ...claims, privateKey: ed.privateKey, kid: 'k'.repeat(256) }));
  await refused({ privateKey: ed.privateKey, secret: 'jwt-secret' }, /either secret or privateKey/);
  await refused({ privateKey: null }, /CryptoKey or a JWK/);
  // The claims are checked the same way as for HS256.
  await refused({ privateKey: ed.privateKey, ttlSeconds: 0 }, /ttlSeconds/);
});
