// Private keys for identity-provider style tokens (RS256, ES256, EdDSA), the three the relay
// verifies against its JWT_PUBLIC_KEYS / JWT_JWKS_URL key sets: a WebCrypto CryptoKey or a
// private JWK is checked to fit exactly one of them and made ready to sign, WebCrypto only.

import { RelayError } from './errors.js';
import { utf8 } from './encoding.js';
import { subtle } from './hmac.js';

/** The JWS algorithms the relay verifies with a public key. */
export type SigningAlgorithm = 'RS256' | 'ES256' | 'EdDSA';

/** A private JWK (RFC 7517) as identity providers and `crypto.subtle.exportKey('jwk')` write it. */
export type PrivateJwk = JsonWebKey & { kid?: string };

/** A private key as a WebCrypto `CryptoKey` (usage `sign`) or as a private JWK. */
export type PrivateKey = CryptoKey | PrivateJwk;

/** The relay's limits: a `kid` is at most 256 bytes; RSA keys have 2048 to 4096 bits. */
const MAX_KID_BYTES = 256;
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 4096;

export interface ReadySigningKey {
  alg: SigningAlgorithm;
  /** The `kid` from the options, else the JWK's own; absent only when neither has one. */
  kid: string | undefined;
  sign(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>>;
}

function invalid(message: string): RelayError {
  return new RelayError({ code: 'invalid_argument', message });
}

/** The WebCrypto parameters for signing with `alg` (ECDSA gives JWS's raw r||s, 64 bytes). */
function signParams(alg: SigningAlgorithm): AlgorithmIdentifier | EcdsaParams {
  if (alg === 'ES256') return { name: 'ECDSA', hash: 'SHA-256' };
  return alg === 'RS256' ? 'RSASSA-PKCS1-v1_5' : 'Ed25519';
}

/** The one algorithm a CryptoKey fits, or why the relay would not accept its tokens. */
function cryptoKeyAlgorithm(key: CryptoKey): SigningAlgorithm {
  if (key.type !== 'private' || !key.usages.includes('sign')) {
    throw invalid('privateKey must be a private key with the "sign" usage');
  }
  const algorithm = key.algorithm as { name: string; hash?: { name: string }; namedCurve?: string; modulusLength?: number };
  switch (algorithm.name) {
    case 'RSASSA-PKCS1-v1_5': {
      if (algorithm.hash?.name !== 'SHA-256') throw invalid('an RSA key must be imported with hash SHA-256 (RS256)');
      const bits = algorithm.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
        throw invalid(`an RSA key must have ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
      }
      return 'RS256';
    }
    case 'ECDSA':
      if (algorithm.namedCurve !== 'P-256') throw invalid('an ECDSA key must be on the P-256 curve (ES256)');
      return 'ES256';
    case 'Ed25519':
      return 'EdDSA';
    default:
      throw invalid(`the relay verifies RS256, ES256 and EdDSA keys, not ${algorithm.name}`);
  }
}

/** The one algorithm a private JWK fits; a JWK `alg` must name it. */
function jwkAlgorithm(jwk: PrivateJwk): SigningAlgorithm {
  let alg: SigningAlgorithm;
  if (jwk.kty === 'RSA') alg = 'RS256';
  else if (jwk.kty === 'EC' && jwk.crv === 'P-256') alg = 'ES256';
  else if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') alg = 'EdDSA';
  else throw invalid('privateKey must be an RSA, EC P-256 or OKP Ed25519 JWK');
  // RFC 9864 names Ed25519 signatures "Ed25519" too (WebCrypto exports that); the token says EdDSA.
  const fits = jwk.alg === undefined || jwk.alg === alg || (alg === 'EdDSA' && jwk.alg === 'Ed25519');
  if (!fits) throw invalid(`the JWK's alg ${jwk.alg} does not fit its key (${alg})`);
  if (typeof jwk.d !== 'string') throw invalid('privateKey is a public JWK: it needs its private part ("d")');
  // The relay skips keys published for another use, so their tokens would all be refused.
  if (jwk.use !== undefined && jwk.use !== 'sig') throw invalid(`the JWK is for use "${jwk.use}", not "sig"`);
  return alg;
}

function importParams(alg: SigningAlgorithm): RsaHashedImportParams | EcKeyImportParams | Algorithm {
  if (alg === 'RS256') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  return alg === 'ES256' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' };
}

function isCryptoKey(key: PrivateKey): key is CryptoKey {
  return typeof CryptoKey === 'function' && key instanceof CryptoKey;
}

/**
 * Checks `privateKey` and `kid` and imports a JWK (not extractable). A JWK's `kid` is used
 * when `kid` is not given.
 */
export async function readySigningKey(privateKey: PrivateKey, kid: string | undefined): Promise<ReadySigningKey> {
  if (privateKey === null || typeof privateKey !== 'object') throw invalid('privateKey must be a CryptoKey or a JWK');
  let key: CryptoKey;
  let alg: SigningAlgorithm;
  let chosenKid = kid;
  if (isCryptoKey(privateKey)) {
    alg = cryptoKeyAlgorithm(privateKey);
    key = privateKey;
  } else {
    alg = jwkAlgorithm(privateKey);
    chosenKid ??= privateKey.kid;
    // Its `key_ops`/`use`/`ext` (checked above or irrelevant here) could only make the import fail.
    const { key_ops: _ops, use: _use, ext: _ext, kid: _kid, ...material } = privateKey;
    try {
      key = await subtle().importKey('jwk', material, importParams(alg), false, ['sign']);
    } catch (error) {
      throw new RelayError({ code: 'invalid_argument', message: `privateKey is not a usable ${alg} JWK`, cause: error });
    }
    if (alg === 'RS256') cryptoKeyAlgorithm(key); // the RSA key size
  }
  if (chosenKid !== undefined) {
    if (typeof chosenKid !== 'string' || chosenKid === '') throw invalid('kid must be a non-empty string');
    if (utf8(chosenKid).length > MAX_KID_BYTES) throw invalid(`kid must be at most ${MAX_KID_BYTES} bytes`);
  }
  const params = signParams(alg);
  return {
    alg,
    kid: chosenKid,
    sign: async (data) => new Uint8Array(await subtle().sign(params, key, data)),
  };
}
