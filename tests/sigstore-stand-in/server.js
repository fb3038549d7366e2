#!/usr/bin/env node
// Loopback stand-in for Sigstore's public-good services, for wharf's keyless signing tests:
//
//   * Fulcio   POST /api/v2/signingCert (the @sigstore/mock handler) and the legacy
//              POST /api/v1/signingCert that cosign 2.5 uses (translated to v2), plus
//              GET /api/v1/rootCert, /api/v2/trustBundle, /api/v2/configuration.
//   * Rekor v1 POST /api/v1/log/entries (the @sigstore/mock handler, after the stand-in
//              canonicalized the entry as real Rekor does), GET /api/v1/log,
//              /api/v1/log/publicKey, /api/v1/log/proof, /api/v1/log/entries/{uuid},
//              /api/v1/log/entries?logIndex=N, POST /api/v1/log/entries/retrieve,
//              /api/v1/index/retrieve. Entries live in a real append-only RFC 6962 tree.
//   * GitHub Actions' OIDC token endpoint: GET /oidc/token (ACTIONS_ID_TOKEN_REQUEST_URL),
//              /oidc/jwks, /oidc/.well-known/openid-configuration.
//
// Everything listens on one loopback port. See README.md beside this file.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

// The mock pulls in reflect-metadata, which @peculiar/x509 needs: load it first.
const mock = require('@sigstore/mock');
const x509 = require('@peculiar/x509');
const { p256 } = require('@noble/curves/p256');
const { p384 } = require('@noble/curves/p384');

const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
const FULCIO_AUDIENCE = 'sigstore';
// Claim the stand-in adds to the token it hands the mock's Fulcio handler: the mock copies one
// claim as-is into the certificate's URI SAN.
const SAN_CLAIM = 'x-stand-in-subject-alternative-name';
// The mock's CA signs leaves with this issuer name (hard-coded in @sigstore/mock 0.12.1), so the
// stand-in's intermediate certificate must carry exactly this subject.
const MOCK_ISSUER_NAME = 'CN=sigstore,O=sigstore.mock';
const ROOT_NAME = 'CN=sigstore-stand-in-root,O=sigstore.mock';
// @sigstore/mock 0.12.1 issues leaf certificates valid for 10 minutes from "now".
const MOCK_LEAF_LIFETIME_S = 600;
const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_BODY = 16 * 1024 * 1024;

// ------------------------------------------------------------------------------------------
// Command line
// ------------------------------------------------------------------------------------------

const USAGE = `usage: node server.js (--state FILE | --dir DIR) [options]

  --port N                  TCP port on 127.0.0.1 (default 0: an ephemeral port)
  --state FILE              write the JSON state file here once ready (default DIR/state.json)
  --dir DIR                 write trusted_root.json, PEM files, jwks.json here
                            (default: the state file's directory)
  --request-token TOKEN     the ACTIONS_ID_TOKEN_REQUEST_TOKEN the OIDC endpoint requires
                            (default test-request-token)
  --repository OWNER/REPO   default repository claim of issued tokens (default octo-org/octo-repo)
  --expire-certs-after S    Fulcio certificates expire S seconds after they are issued
                            (default 600; negative: already expired when issued)
  --exit-with-stdin         exit when standard input closes (so a killed parent cannot leave
                            the stand-in running)
  --help
`;

function parseArgs(argv) {
  const opts = {
    port: 0,
    state: null,
    dir: null,
    requestToken: 'test-request-token',
    repository: 'octo-org/octo-repo',
    expireCertsAfter: null,
    exitWithStdin: false,
  };
  const need = (i, name) => {
    if (i + 1 >= argv.length) usageError(`${name} needs a value`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let inline = null;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      inline = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const value = () => {
      if (inline !== null) return inline;
      const v = need(i, arg);
      i++;
      return v;
    };
    switch (arg) {
      case '--port': {
        const v = value();
        opts.port = Number(v);
        if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
          usageError(`bad --port ${v}`);
        }
        break;
      }
      case '--state': opts.state = path.resolve(value()); break;
      case '--dir': opts.dir = path.resolve(value()); break;
      case '--request-token': opts.requestToken = value(); break;
      case '--repository': {
        opts.repository = value();
        if (!/^[^/\s]+\/[^/\s]+$/.test(opts.repository)) usageError('--repository must be OWNER/REPO');
        break;
      }
      case '--expire-certs-after': {
        const v = value();
        opts.expireCertsAfter = Number(v);
        if (!Number.isFinite(opts.expireCertsAfter)) usageError(`bad --expire-certs-after ${v}`);
        break;
      }
      case '--exit-with-stdin': opts.exitWithStdin = true; break;
      case '--help': case '-h': process.stdout.write(USAGE); process.exit(0); break;
      default: usageError(`unknown argument ${argv[i]}`);
    }
  }
  if (!opts.state && !opts.dir) usageError('give --state FILE or --dir DIR');
  if (!opts.dir) opts.dir = path.dirname(opts.state);
  if (!opts.state) opts.state = path.join(opts.dir, 'state.json');
  return opts;
}

function usageError(msg) {
  process.stderr.write(`sigstore-stand-in: ${msg}\n${USAGE}`);
  process.exit(2);
}

function log(msg) {
  process.stderr.write(`sigstore-stand-in: ${msg}\n`);
}

// ------------------------------------------------------------------------------------------
// Small helpers: hashing, PEM, JSON canonicalization, errors
// ------------------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message, grpcCode) {
    super(message);
    this.status = status;
    this.grpcCode = grpcCode;
  }
}

const sha256 = (...parts) => {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const b64 = (buf) => Buffer.from(buf).toString('base64');
const b64url = (buf) => Buffer.from(buf).toString('base64url');

function strictBase64(s, what) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s.replace(/\s/g, ''))) {
    throw new HttpError(400, `${what}: not base64`);
  }
  return Buffer.from(s, 'base64');
}

// Go's pem.EncodeToMemory: 64-character lines, trailing newline.
function toPEM(type, der) {
  const body = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${type}-----\n${body}\n-----END ${type}-----\n`;
}

function pemBlocks(text) {
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  const blocks = [];
  let m;
  while ((m = re.exec(text)) !== null) {
    blocks.push({ type: m[1], der: Buffer.from(m[2].replace(/\s+/g, ''), 'base64') });
  }
  return blocks;
}

// RFC 8785 JSON canonicalization for the values used here (objects, arrays, strings,
// integers, booleans, null): sorted keys, no whitespace. Rekor stores JCS bodies.
function jcs(value) {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(jcs).join(',')}]`;
  const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${jcs(value[k])}`).join(',')}}`;
}

function atomicWrite(file, data) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

// ------------------------------------------------------------------------------------------
// Public keys as Rekor sees them (pkg/pki/x509): a PEM public key, a PEM certificate or a PEM
// certificate chain; canonical form re-encoded the way Go's pem package does.
// ------------------------------------------------------------------------------------------

function parseVerifierPEM(pemBytes, what) {
  const text = Buffer.from(pemBytes).toString('utf8').trim();
  const blocks = pemBlocks(text);
  if (blocks.length === 0) throw new HttpError(400, `${what}: invalid public key: failure decoding PEM`);
  try {
    if (blocks.length > 1 || blocks[0].type === 'CERTIFICATE') {
      const certs = blocks.map((b) => {
        if (b.type !== 'CERTIFICATE') throw new Error(`unexpected PEM block ${b.type} in chain`);
        return new crypto.X509Certificate(b.der);
      });
      return {
        key: certs[0].publicKey,
        canonical: certs.map((c) => toPEM('CERTIFICATE', c.raw)).join(''),
        certificate: certs[0],
      };
    }
    if (blocks[0].type === 'PUBLIC KEY') {
      const key = crypto.createPublicKey({ key: blocks[0].der, format: 'der', type: 'spki' });
      return { key, canonical: toPEM('PUBLIC KEY', key.export({ format: 'der', type: 'spki' })) };
    }
  } catch (e) {
    throw new HttpError(400, `${what}: ${e.message}`);
  }
  throw new HttpError(400, `${what}: unsupported PEM block ${blocks[0].type}`);
}

// Verifies an ASN.1 signature over an already computed digest (hashedrekord entries).
function verifyPrehashed(key, digest, sig) {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails.namedCurve;
    const impl = { prime256v1: p256, secp384r1: p384 }[curve];
    if (!impl) throw new HttpError(400, `unsupported curve ${curve}`);
    const point = key.export({ format: 'der', type: 'spki' });
    // The uncompressed point is the tail of the SPKI.
    const len = curve === 'prime256v1' ? 65 : 97;
    try {
      return impl.verify(sig, digest, point.subarray(point.length - len), { prehash: false, lowS: false, format: 'der' });
    } catch {
      return false;
    }
  }
  if (key.asymmetricKeyType === 'rsa') {
    try {
      const decrypted = crypto.publicDecrypt({ key, padding: crypto.constants.RSA_PKCS1_PADDING }, sig);
      return decrypted.length >= digest.length && decrypted.subarray(decrypted.length - digest.length).equals(digest);
    } catch {
      return false;
    }
  }
  throw new HttpError(400, `unsupported key type ${key.asymmetricKeyType} for hashedrekord in the stand-in`);
}

function verifyMessage(key, message, sig, hashes = ['sha256']) {
  for (const h of key.asymmetricKeyType === 'ed25519' ? [null] : hashes) {
    try {
      if (crypto.verify(h, message, key, sig)) return true;
    } catch {
      // wrong algorithm for this key: try the next
    }
  }
  return false;
}

// DSSE pre-authentication encoding.
function pae(payloadType, payload) {
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `),
    payload,
  ]);
}

function parseEnvelope(text, what) {
  let env;
  try {
    env = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `${what}: envelope is not JSON: ${e.message}`);
  }
  if (typeof env.payloadType !== 'string' || typeof env.payload !== 'string' || !Array.isArray(env.signatures) || env.signatures.length === 0) {
    throw new HttpError(400, `${what}: invalid DSSE envelope`);
  }
  const payload = strictBase64(env.payload, `${what}: envelope payload`);
  return { env, payload, pae: pae(env.payloadType, payload) };
}

// ------------------------------------------------------------------------------------------
// Rekor: canonicalization of proposed entries, as real Rekor's pkg/types do
// ------------------------------------------------------------------------------------------

const hex64 = /^[0-9a-f]{64}$/;

function canonicalizeEntry(pe) {
  if (!pe || typeof pe !== 'object') throw new HttpError(400, 'proposed entry must be a JSON object');
  const { kind, apiVersion, spec } = pe;
  if (typeof kind !== 'string' || typeof apiVersion !== 'string' || !spec || typeof spec !== 'object') {
    throw new HttpError(400, 'proposed entry needs kind, apiVersion and spec');
  }
  const id = `${kind}/${apiVersion}`;
  if (id === 'hashedrekord/0.0.1') return canonicalHashedRekord(spec);
  if (id === 'intoto/0.0.1') return canonicalIntotoV001(spec);
  if (id === 'dsse/0.0.1') return canonicalDsse(spec);
  // Other kinds are stored as proposed, like the mock does, without checks.
  log(`warning: ${id} entries are stored as proposed (not canonicalized, not verified)`);
  return { entry: pe, indexKeys: [] };
}

function canonicalHashedRekord(spec) {
  const what = 'hashedrekord';
  const hash = spec.data && spec.data.hash;
  if (!hash || typeof hash.value !== 'string' || typeof hash.algorithm !== 'string') {
    throw new HttpError(400, `${what}: missing data.hash`);
  }
  const lens = { sha256: 64, sha384: 96, sha512: 128 };
  if (!(hash.algorithm in lens)) throw new HttpError(400, `${what}: unsupported hash algorithm ${hash.algorithm}`);
  if (!new RegExp(`^[0-9a-f]{${lens[hash.algorithm]}}$`).test(hash.value)) {
    throw new HttpError(400, `${what}: bad ${hash.algorithm} value`);
  }
  const sig = spec.signature;
  if (!sig || typeof sig.content !== 'string' || !sig.publicKey || typeof sig.publicKey.content !== 'string') {
    throw new HttpError(400, `${what}: missing signature content or public key`);
  }
  const sigBytes = strictBase64(sig.content, `${what}: signature`);
  const verifier = parseVerifierPEM(strictBase64(sig.publicKey.content, `${what}: public key`), `${what}: public key`);
  if (!verifyPrehashed(verifier.key, Buffer.from(hash.value, 'hex'), sigBytes)) {
    throw new HttpError(400, `${what}: signature does not verify against data.hash with the given key`);
  }
  const entry = {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: hash.algorithm, value: hash.value } },
      signature: { content: b64(sigBytes), publicKey: { content: b64(verifier.canonical) } },
    },
  };
  return { entry, indexKeys: [`${hash.algorithm}:${hash.value}`, keyIndex(verifier.canonical)] };
}

function canonicalIntotoV001(spec) {
  const what = 'intoto v0.0.1';
  const envelope = spec.content && spec.content.envelope;
  if (typeof envelope !== 'string' || envelope === '') throw new HttpError(400, `${what}: missing content.envelope`);
  if (typeof spec.publicKey !== 'string') throw new HttpError(400, `${what}: missing publicKey`);
  const verifier = parseVerifierPEM(strictBase64(spec.publicKey, `${what}: publicKey`), `${what}: publicKey`);
  const { env, payload, pae: message } = parseEnvelope(envelope, what);
  const ok = env.signatures.some((s) => typeof s.sig === 'string' && verifyMessage(verifier.key, message, Buffer.from(s.sig, 'base64')));
  if (!ok) throw new HttpError(400, `${what}: no envelope signature verifies with publicKey`);
  const envelopeHash = sha256(envelope).toString('hex');
  const payloadHash = sha256(payload).toString('hex');
  const entry = {
    apiVersion: '0.0.1',
    kind: 'intoto',
    spec: {
      content: {
        hash: { algorithm: 'sha256', value: envelopeHash },
        payloadHash: { algorithm: 'sha256', value: payloadHash },
      },
      publicKey: b64(verifier.canonical),
    },
  };
  return {
    entry,
    indexKeys: [`sha256:${envelopeHash}`, `sha256:${payloadHash}`, keyIndex(verifier.canonical), ...subjectDigests(env, payload)],
  };
}

function canonicalDsse(spec) {
  const what = 'dsse v0.0.1';
  const pc = spec.proposedContent;
  if (!pc || typeof pc.envelope !== 'string') {
    throw new HttpError(400, `${what}: only proposedContent (envelope and verifiers) can be inserted`);
  }
  if (!Array.isArray(pc.verifiers) || pc.verifiers.length === 0) throw new HttpError(400, `${what}: missing verifiers`);
  const verifiers = pc.verifiers.map((v, i) => parseVerifierPEM(strictBase64(v, `${what}: verifier ${i}`), `${what}: verifier ${i}`));
  const { env, payload, pae: message } = parseEnvelope(pc.envelope, what);
  const signatures = env.signatures.map((s, i) => {
    if (typeof s.sig !== 'string') throw new HttpError(400, `${what}: signature ${i} has no sig`);
    const v = verifiers.find((cand) => verifyMessage(cand.key, message, Buffer.from(s.sig, 'base64')));
    if (!v) throw new HttpError(400, `${what}: all signatures must have a key that verifies it`);
    return { signature: s.sig, verifier: b64(v.canonical) };
  });
  signatures.sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
  const envelopeHash = sha256(pc.envelope).toString('hex');
  const payloadHash = sha256(payload).toString('hex');
  const entry = {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: envelopeHash },
      payloadHash: { algorithm: 'sha256', value: payloadHash },
      signatures,
    },
  };
  return {
    entry,
    indexKeys: [`sha256:${envelopeHash}`, `sha256:${payloadHash}`, ...verifiers.map((v) => keyIndex(v.canonical)), ...subjectDigests(env, payload)],
  };
}

function keyIndex(canonicalPEM) {
  return `sha256:${sha256(canonicalPEM).toString('hex')}`;
}

function subjectDigests(env, payload) {
  if (env.payloadType !== 'application/vnd.in-toto+json') return [];
  try {
    const st = JSON.parse(payload.toString('utf8'));
    return (st.subject || []).flatMap((s) => Object.entries(s.digest || {}).map(([alg, d]) => `${alg}:${d}`));
  } catch {
    return [];
  }
}

// ------------------------------------------------------------------------------------------
// Rekor: an append-only RFC 6962 Merkle tree with SETs and signed checkpoints
// ------------------------------------------------------------------------------------------

class TransparencyLog {
  constructor({ keyPair, origin, treeID }) {
    this.privateKey = keyPair.privateKey;
    this.publicKeyDER = keyPair.publicKey.export({ format: 'der', type: 'spki' });
    this.publicKeyPEM = toPEM('PUBLIC KEY', this.publicKeyDER);
    this.logID = sha256(this.publicKeyDER);
    this.origin = origin;
    this.treeID = treeID; // BigInt
    this.treeIDHex = treeID.toString(16).padStart(16, '0');
    this.leaves = []; // leaf hashes
    this.entries = []; // {body (Buffer), integratedTime, logIndex, leafHash, indexKeys}
    this.byLeafHash = new Map();
    this.memo = new Map();
  }

  static leafHash(body) {
    return sha256(Buffer.from([0]), body);
  }

  // MTH(D[lo:hi]) from RFC 6962 section 2.1.
  root(lo, hi) {
    const n = hi - lo;
    if (n === 0) return sha256(Buffer.alloc(0));
    if (n === 1) return this.leaves[lo];
    const key = `${lo}:${hi}`;
    let h = this.memo.get(key);
    if (!h) {
      const k = splitPoint(n);
      h = sha256(Buffer.from([1]), this.root(lo, lo + k), this.root(lo + k, hi));
      this.memo.set(key, h);
    }
    return h;
  }

  // PATH(m, D[lo:hi]), RFC 6962 section 2.1.1.
  inclusionPath(m, lo, hi) {
    const n = hi - lo;
    if (n <= 1) return [];
    const k = splitPoint(n);
    if (m < k) return [...this.inclusionPath(m, lo, lo + k), this.root(lo + k, hi)];
    return [...this.inclusionPath(m - k, lo + k, hi), this.root(lo, lo + k)];
  }

  // SUBPROOF(m, D[lo:hi], b), RFC 6962 section 2.1.2.
  subproof(m, lo, hi, b) {
    const n = hi - lo;
    if (m === n) return b ? [] : [this.root(lo, hi)];
    const k = splitPoint(n);
    if (m <= k) return [...this.subproof(m, lo, lo + k, b), this.root(lo + k, hi)];
    return [...this.subproof(m - k, lo + k, hi, false), this.root(lo, lo + k)];
  }

  consistencyProof(first, last) {
    if (first === 0 || first === last) return [];
    return this.subproof(first, 0, last, true);
  }

  checkpoint(size) {
    const note = `${this.origin} - ${this.treeID}\n${size}\n${b64(this.root(0, size))}\n`;
    const sig = crypto.sign('sha256', Buffer.from(note), this.privateKey);
    const hint = this.logID.subarray(0, 4);
    return `${note}\n\u2014 ${this.origin} ${b64(Buffer.concat([hint, sig]))}\n`;
  }

  entryID(e) {
    return this.treeIDHex + e.leafHash.toString('hex');
  }

  find(uuid) {
    const u = String(uuid).toLowerCase();
    let leaf;
    if (/^[0-9a-f]{80}$/.test(u)) {
      if (u.slice(0, 16) !== this.treeIDHex) return undefined;
      leaf = u.slice(16);
    } else if (hex64.test(u)) {
      leaf = u;
    } else {
      throw new HttpError(400, `invalid entry UUID ${uuid}`);
    }
    return this.byLeafHash.get(leaf);
  }

  findBody(body) {
    return this.byLeafHash.get(TransparencyLog.leafHash(body).toString('hex'));
  }

  append(body, integratedTime, indexKeys) {
    const leafHash = TransparencyLog.leafHash(body);
    const e = { body, integratedTime, logIndex: this.leaves.length, leafHash, indexKeys };
    this.leaves.push(leafHash);
    this.entries.push(e);
    this.byLeafHash.set(leafHash.toString('hex'), e);
    return e;
  }

  // One element of a Rekor v1 LogEntry map: {entryID: LogEntryAnon}, with an inclusion
  // proof against the current tree head, as real Rekor returns it.
  render(e) {
    const size = this.leaves.length;
    const setPayload = {
      body: b64(e.body),
      integratedTime: e.integratedTime,
      logID: this.logID.toString('hex'),
      logIndex: e.logIndex,
    };
    const set = crypto.sign('sha256', Buffer.from(jcs(setPayload)), this.privateKey);
    return {
      [this.entryID(e)]: {
        ...setPayload,
        verification: {
          inclusionProof: {
            checkpoint: this.checkpoint(size),
            hashes: this.inclusionPath(e.logIndex, 0, size).map((h) => h.toString('hex')),
            logIndex: e.logIndex,
            rootHash: this.root(0, size).toString('hex'),
            treeSize: size,
          },
          signedEntryTimestamp: b64(set),
        },
      },
    };
  }

  info() {
    const size = this.leaves.length;
    return {
      rootHash: this.root(0, size).toString('hex'),
      signedTreeHead: this.checkpoint(size),
      treeID: this.treeID.toString(),
      treeSize: size,
      inactiveShards: [],
    };
  }
}

// Largest power of two smaller than n (n >= 2).
function splitPoint(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

// ------------------------------------------------------------------------------------------
// OIDC: GitHub Actions-like ID tokens, ES256-signed
// ------------------------------------------------------------------------------------------

class TokenIssuer {
  constructor({ keyPair, defaultRepository }) {
    this.privateKey = keyPair.privateKey;
    this.publicKey = keyPair.publicKey;
    const jwk = keyPair.publicKey.export({ format: 'jwk' });
    // RFC 7638 thumbprint as key ID.
    this.kid = b64url(sha256(jcs({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })));
    this.jwk = { ...jwk, kid: this.kid, alg: 'ES256', use: 'sig' };
    this.defaultRepository = defaultRepository;
    this.count = 0;
  }

  jwks() {
    return { keys: [this.jwk] };
  }

  // Claims like GitHub's for a push to refs/heads/main running release.yml. Query parameters
  // other than audience and api-version override claims: an empty value removes the claim;
  // iat/nbf/exp take seconds since the epoch, or +N / -N relative to now. repository and ref
  // also move the claims derived from them (sub, job_workflow_ref, …) unless those are given.
  claims(params) {
    const over = {};
    for (const [k, v] of params) {
      if (k !== 'audience' && k !== 'api-version') over[k] = v;
    }
    const now = Math.floor(Date.now() / 1000);
    const repository = over.repository || this.defaultRepository;
    const ref = over.ref || 'refs/heads/main';
    const owner = repository.split('/')[0];
    const sha = crypto.createHash('sha1').update(`${repository}@${ref}`).digest('hex');
    const workflowRef = `${repository}/.github/workflows/release.yml@${ref}`;
    const claims = {
      jti: crypto.randomUUID(),
      sub: `repo:${repository}:ref:${ref}`,
      aud: params.get('audience') || FULCIO_AUDIENCE,
      ref,
      sha,
      repository,
      repository_owner: owner,
      repository_owner_id: '1000001',
      repository_visibility: 'public',
      repository_id: '2000002',
      actor_id: '1000001',
      actor: owner,
      workflow: 'release',
      head_ref: '',
      base_ref: '',
      event_name: 'push',
      ref_protected: 'true',
      ref_type: ref.startsWith('refs/tags/') ? 'tag' : 'branch',
      workflow_ref: workflowRef,
      workflow_sha: sha,
      job_workflow_ref: workflowRef,
      job_workflow_sha: sha,
      run_id: '3000003',
      run_number: '1',
      run_attempt: '1',
      runner_environment: 'github-hosted',
      iss: GITHUB_ISSUER,
      nbf: now - 5,
      exp: now + 600,
      iat: now,
    };
    for (const [k, v] of Object.entries(over)) {
      if (v === '') {
        delete claims[k];
      } else if (k === 'iat' || k === 'nbf' || k === 'exp') {
        const n = Number(v);
        if (!Number.isFinite(n)) throw new HttpError(400, `${k} must be a number, +N or -N`);
        claims[k] = /^[+-]/.test(v) ? now + n : n;
      } else {
        claims[k] = v;
      }
    }
    return claims;
  }

  sign(claims) {
    const header = { alg: 'ES256', kid: this.kid, typ: 'JWT' };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = crypto.sign('sha256', Buffer.from(input), { key: this.privateKey, dsaEncoding: 'ieee-p1363' });
    this.count++;
    return `${input}.${b64url(sig)}`;
  }

  // What Fulcio checks before issuing: our signature, expiry, audience. Returns the claims.
  verify(token) {
    const unauth = (msg) => new HttpError(401, `There was an error processing the identity token: ${msg}`, 16);
    if (typeof token !== 'string') throw unauth('missing token');
    const parts = token.split('.');
    if (parts.length !== 3) throw unauth('not a JWT');
    let header;
    let claims;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    } catch {
      throw unauth('malformed JWT');
    }
    if (header.alg !== 'ES256') throw unauth(`unexpected alg ${header.alg}`);
    const sigOk = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`),
      { key: this.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(parts[2], 'base64url'));
    if (!sigOk) throw unauth('signature not made by the stand-in OIDC key');
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.exp !== 'number' || claims.exp <= now) throw unauth('token is expired');
    if (typeof claims.nbf === 'number' && claims.nbf > now + 60) throw unauth('token is not valid yet');
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(FULCIO_AUDIENCE)) throw unauth(`audience ${JSON.stringify(claims.aud)} is not ${FULCIO_AUDIENCE}`);
    if (typeof claims.iss !== 'string' || claims.iss === '') throw unauth('missing iss');
    if (typeof claims.sub !== 'string' || claims.sub === '') throw unauth('missing sub');
    return claims;
  }
}

// ------------------------------------------------------------------------------------------
// Fulcio: checks in front of the mock's v2 handler, and the legacy v1 translation
// ------------------------------------------------------------------------------------------

class Fulcio {
  constructor({ handler, tokens, rootPEM, intermediatePEM }) {
    this.handler = handler;
    this.tokens = tokens;
    this.rootPEM = rootPEM;
    this.intermediatePEM = intermediatePEM;
  }

  // Real Fulcio's GitHub Actions principal: SAN = https://github.com/ + job_workflow_ref.
  // Tokens of other issuers (only reachable by overriding iss) get their sub as URI SAN.
  static subjectAlternativeName(claims) {
    if (claims.iss === GITHUB_ISSUER) {
      if (typeof claims.job_workflow_ref !== 'string' || claims.job_workflow_ref === '') {
        throw new HttpError(400, 'GitHub Actions token without job_workflow_ref', 3);
      }
      return `https://github.com/${claims.job_workflow_ref}`;
    }
    return claims.sub;
  }

  // Proof of possession: a signature over the token's subject (the challenge claim is sub
  // for tokens without email), made with the key to certify.
  static checkProof(keyPEM, proofB64, subject) {
    let key;
    try {
      key = crypto.createPublicKey(keyPEM);
    } catch (e) {
      throw new HttpError(400, `invalid public key: ${e.message}`, 3);
    }
    if (typeof proofB64 !== 'string' || proofB64 === '') throw new HttpError(400, 'missing proof of possession', 3);
    const proof = Buffer.from(proofB64, 'base64');
    if (!verifyMessage(key, Buffer.from(subject), proof, ['sha256', 'sha384', 'sha512'])) {
      throw new HttpError(400, 'The signature supplied in the request could not be verified', 3);
    }
  }

  async signingCertV2(body, authorization) {
    let req;
    try {
      req = JSON.parse(body);
    } catch (e) {
      throw new HttpError(400, `request is not JSON: ${e.message}`, 3);
    }
    if (!req || typeof req !== 'object') throw new HttpError(400, 'request must be a JSON object', 3);
    let token = req.credentials && req.credentials.oidcIdentityToken;
    if (!token && authorization) token = bearer(authorization);
    const claims = this.tokens.verify(token);
    if (req.publicKeyRequest) {
      const pk = req.publicKeyRequest.publicKey;
      if (!pk || typeof pk.content !== 'string') throw new HttpError(400, 'missing publicKeyRequest.publicKey.content', 3);
      Fulcio.checkProof(pk.content, req.publicKeyRequest.proofOfPossession, claims.sub);
    } else if (typeof req.certificateSigningRequest === 'string') {
      // A protobuf bytes field: base64 of the PEM CSR. The mock wants the PEM itself.
      let csrPEM = req.certificateSigningRequest;
      const decoded = Buffer.from(csrPEM, 'base64').toString('utf8');
      if (decoded.includes('-----BEGIN')) csrPEM = decoded;
      let csr;
      try {
        csr = new x509.Pkcs10CertificateRequest(csrPEM);
      } catch (e) {
        throw new HttpError(400, `invalid certificate signing request: ${e.message}`, 3);
      }
      if (!(await csr.verify())) throw new HttpError(400, 'certificate signing request signature does not verify', 3);
      req.certificateSigningRequest = csrPEM;
    } else {
      throw new HttpError(400, 'one of publicKeyRequest or certificateSigningRequest is required', 3);
    }
    // Hand the mock a token whose SAN claim holds the full URI. The mock does not check the
    // token's signature (the stand-in did above).
    const [h, , s] = token.split('.');
    const rewritten = { ...claims, [SAN_CLAIM]: Fulcio.subjectAlternativeName(claims) };
    req.credentials = { oidcIdentityToken: `${h}.${b64url(JSON.stringify(rewritten))}.${s}` };
    const res = await this.handler.fn(JSON.stringify(req));
    if (res.statusCode !== 201) throw new HttpError(res.statusCode || 500, String(res.response), 13);
    const out = JSON.parse(res.response);
    // The mock returns [leaf, issuer]; real Fulcio returns the whole chain up to the root.
    out.signedCertificateEmbeddedSct.chain.certificates.push(this.rootPEM);
    return out;
  }

  // Legacy API (cosign 2.x): token in Authorization, {"publicKey": {"content": base64 of a PEM
  // or DER public key, "algorithm"}, "signedEmailAddress": base64 proof}; answers the PEM chain.
  async signingCertV1(body, authorization) {
    let req;
    try {
      req = JSON.parse(body);
    } catch (e) {
      throw new HttpError(400, `request is not JSON: ${e.message}`, 3);
    }
    const token = bearer(authorization || '');
    if (!token) throw new HttpError(401, 'missing bearer token in Authorization', 16);
    if (!req || !req.publicKey || typeof req.publicKey.content !== 'string') {
      throw new HttpError(400, 'missing publicKey.content', 3);
    }
    const raw = Buffer.from(req.publicKey.content, 'base64');
    const keyPEM = raw.toString('utf8').includes('-----BEGIN') ? raw.toString('utf8') : toPEM('PUBLIC KEY', raw);
    const v2 = await this.signingCertV2(JSON.stringify({
      credentials: { oidcIdentityToken: token },
      publicKeyRequest: {
        publicKey: { algorithm: 'ECDSA', content: keyPEM },
        proofOfPossession: req.signedEmailAddress,
      },
    }));
    return v2.signedCertificateEmbeddedSct.chain.certificates.map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join('');
  }
}

function bearer(authorization) {
  const m = /^bearer\s+(\S+)\s*$/i.exec(authorization || '');
  return m ? m[1] : null;
}

// ------------------------------------------------------------------------------------------
// Certificate authority: the mock's CA, issuing from an intermediate under a stand-in root
// ------------------------------------------------------------------------------------------

async function setUpCA(ctLog, expireCertsAfter) {
  const issuing = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const ca = await mock.initializeCA(issuing, ctLog);
  const wc = ca.crypto; // the @peculiar/webcrypto instance holding the CA's CryptoKeys
  const alg = { name: 'ECDSA', namedCurve: 'P-384' };
  const rootNode = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const rootKeys = {
    privateKey: await wc.subtle.importKey('jwk', rootNode.privateKey.export({ format: 'jwk' }), alg, true, ['sign']),
    publicKey: await wc.subtle.importKey('jwk', rootNode.publicKey.export({ format: 'jwk' }), alg, true, ['verify']),
  };
  // Valid from a day ago, so certificates issued with a backdated clock still chain.
  const notBefore = new Date(Date.now() - DAY_MS);
  const notAfter = new Date(Date.now() + 365 * DAY_MS);
  const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-384' };
  const serial = () => `01${crypto.randomBytes(15).toString('hex')}`;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: ROOT_NAME,
    notBefore,
    notAfter,
    signingAlgorithm,
    keys: rootKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey, false, wc),
    ],
  }, wc);
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: MOCK_ISSUER_NAME,
    issuer: root.subject,
    notBefore,
    notAfter,
    signingAlgorithm,
    publicKey: ca.keyPair.publicKey,
    signingKey: rootKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning]),
      await x509.SubjectKeyIdentifierExtension.create(ca.keyPair.publicKey, false, wc),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey, false, wc),
    ],
  }, wc);
  if (!(await intermediate.verify({ publicKey: root.publicKey, signatureOnly: true }, wc))) {
    throw new Error('intermediate certificate does not verify under the root');
  }
  // CAImpl (not exported) keeps the certificate it names as issuer in `root` and its clock in
  // `getCurrentTime`; both are plain properties in @sigstore/mock 0.12.1.
  if (!('root' in ca) || typeof ca.getCurrentTime !== 'function') {
    throw new Error('unexpected @sigstore/mock CA shape: pin @sigstore/mock to 0.12.1');
  }
  ca.root = intermediate;
  if (expireCertsAfter !== null) {
    // The mock's leaves are valid [clock, clock + 10 min]: move its clock back so that they
    // expire expireCertsAfter seconds after issuance.
    const shiftMs = (MOCK_LEAF_LIFETIME_S - expireCertsAfter) * 1000;
    ca.getCurrentTime = () => new Date(Date.now() - shiftMs);
  }
  return {
    ca,
    rootDER: Buffer.from(root.rawData),
    intermediateDER: Buffer.from(intermediate.rawData),
    notBefore,
  };
}

// ------------------------------------------------------------------------------------------
// Trust material written to disk
// ------------------------------------------------------------------------------------------

function trustedRoot({ url, tlog, ctLogKeyDER, rootDER, intermediateDER, validFrom }) {
  const start = validFrom.toISOString();
  const p256Key = (der) => ({ rawBytes: b64(der), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } });
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [{
      baseUrl: url,
      hashAlgorithm: 'SHA2_256',
      publicKey: p256Key(tlog.publicKeyDER),
      logId: { keyId: b64(tlog.logID) },
    }],
    certificateAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: url,
      certChain: { certificates: [{ rawBytes: b64(intermediateDER) }, { rawBytes: b64(rootDER) }] },
      validFor: { start },
    }],
    ctlogs: [{
      baseUrl: url,
      hashAlgorithm: 'SHA2_256',
      publicKey: p256Key(ctLogKeyDER),
      logId: { keyId: b64(sha256(ctLogKeyDER)) },
    }],
    timestampAuthorities: [],
  };
}

// A ClientTrustConfig (what sigstore-python's --trust-config takes): the trusted root plus
// a signing config naming the stand-in's services.
function clientTrustConfig(root, url, validFrom) {
  const service = (u) => ({ url: u, majorApiVersion: 1, validFor: { start: validFrom.toISOString() }, operator: 'wharf-stand-in' });
  return {
    mediaType: 'application/vnd.dev.sigstore.clienttrustconfig.v0.1+json',
    trustedRoot: root,
    signingConfig: {
      mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
      caUrls: [service(url)],
      oidcUrls: [],
      rekorTlogUrls: [service(url)],
      tsaUrls: [],
      rekorTlogConfig: { selector: 'ANY' },
      tsaConfig: { selector: 'ANY' },
    },
  };
}

// ------------------------------------------------------------------------------------------
// HTTP
// ------------------------------------------------------------------------------------------

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, contentType = 'application/json', headers = {}) {
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

function parseJSON(body) {
  try {
    return JSON.parse(body);
  } catch (e) {
    throw new HttpError(400, `request is not JSON: ${e.message}`);
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  fs.mkdirSync(opts.dir, { recursive: true });

  let app = null; // set once everything is initialized
  const server = http.createServer((req, res) => {
    const started = Date.now();
    res.on('finish', () => {
      log(`${req.method} ${req.url.length > 200 ? `${req.url.slice(0, 200)}…` : req.url} -> ${res.statusCode} (${Date.now() - started} ms)`);
    });
    if (!app) {
      send(res, 503, { code: 503, message: 'starting' });
      return;
    }
    handle(app, req, res).catch((e) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (!(e instanceof HttpError)) log(`internal error: ${e.stack || e}`);
      else log(`  ${status}: ${e.message}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = app.isFulcio(req) && e.grpcCode !== undefined
        ? { code: e.grpcCode, message: e.message, details: [] }
        : { code: status, message: e.message };
      send(res, status, body);
    });
  });
  server.keepAliveTimeout = 5000;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', resolve);
  });
  const port = server.address().port;
  const url = `http://127.0.0.1:${port}`;

  // Keys and services.
  const ecKey = (curve) => crypto.generateKeyPairSync('ec', { namedCurve: curve });
  const ctKeyPair = ecKey('P-256');
  const tlogKeyPair = ecKey('P-256');
  const ctLog = await mock.initializeCTLog(ctKeyPair);
  const { ca, rootDER, intermediateDER, notBefore } = await setUpCA(ctLog, opts.expireCertsAfter);
  const mockTLog = await mock.initializeTLog(url, tlogKeyPair);
  const treeIDBytes = crypto.randomBytes(8);
  treeIDBytes[0] = (treeIDBytes[0] & 0x3f) | 0x10; // 16 hex digits, positive int64
  const tlog = new TransparencyLog({
    keyPair: tlogKeyPair,
    origin: new URL(url).host,
    treeID: treeIDBytes.readBigUInt64BE(0),
  });
  const tokens = new TokenIssuer({ keyPair: ecKey('P-256'), defaultRepository: opts.repository });
  const rootPEM = toPEM('CERTIFICATE', rootDER);
  const intermediatePEM = toPEM('CERTIFICATE', intermediateDER);
  const fulcio = new Fulcio({
    handler: mock.fulcioHandler(ca, { subjectClaim: SAN_CLAIM }),
    tokens,
    rootPEM,
    intermediatePEM,
  });
  const rekor = mock.rekorHandler(mockTLog);
  const ctLogKeyDER = ctKeyPair.publicKey.export({ format: 'der', type: 'spki' });

  // Files.
  const file = (name) => path.join(opts.dir, name);
  const root = trustedRoot({ url, tlog, ctLogKeyDER, rootDER, intermediateDER, validFrom: notBefore });
  const files = {
    trusted_root: file('trusted_root.json'),
    trust_config: file('trust_config.json'),
    fulcio_root_pem: file('fulcio_root.pem'),
    fulcio_chain_pem: file('fulcio_chain.pem'),
    ctlog_public_key_pem: file('ctlog_public_key.pem'),
    rekor_public_key_pem: file('rekor_public_key.pem'),
    oidc_jwks: file('oidc_jwks.json'),
  };
  atomicWrite(files.trusted_root, `${JSON.stringify(root, null, 2)}\n`);
  atomicWrite(files.trust_config, `${JSON.stringify(clientTrustConfig(root, url, notBefore), null, 2)}\n`);
  atomicWrite(files.fulcio_root_pem, rootPEM + intermediatePEM);
  atomicWrite(files.fulcio_chain_pem, intermediatePEM + rootPEM);
  atomicWrite(files.ctlog_public_key_pem, toPEM('PUBLIC KEY', ctLogKeyDER));
  atomicWrite(files.rekor_public_key_pem, tlog.publicKeyPEM);
  atomicWrite(files.oidc_jwks, `${JSON.stringify(tokens.jwks(), null, 2)}\n`);

  const defaultIdentity = `https://github.com/${opts.repository}/.github/workflows/release.yml@refs/heads/main`;
  const state = {
    url,
    fulcio_url: url,
    rekor_url: url,
    oidc_url: `${url}/oidc/token?api-version=2.0`,
    oidc_request_token: opts.requestToken,
    oidc_issuer: GITHUB_ISSUER,
    oidc_audience: FULCIO_AUDIENCE,
    repository: opts.repository,
    identity: defaultIdentity,
    ...files,
    cert_lifetime_seconds: opts.expireCertsAfter === null ? MOCK_LEAF_LIFETIME_S : opts.expireCertsAfter,
    pid: process.pid,
  };

  app = {
    opts, url, fulcio, rekor, tlog, tokens, rootPEM, intermediatePEM,
    isFulcio: (req) => /^\/api\/v[12]\/(signingCert|rootCert|trustBundle|configuration)/.test(req.url),
  };

  atomicWrite(opts.state, `${JSON.stringify(state, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(state)}\n`);
  log(`ready on ${url} (state ${opts.state})`);

  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    log(`${why}: shutting down`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (opts.exitWithStdin) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.on('close', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.resume();
  }
}

async function handle(app, req, res) {
  const u = new URL(req.url, app.url);
  const p = u.pathname.replace(/\/+$/, '') || '/';
  const m = req.method;
  const body = m === 'POST' || m === 'PUT' ? await readBody(req) : '';

  // ---- GitHub Actions OIDC ----------------------------------------------------------------
  if (m === 'GET' && p === '/oidc/token') {
    if (bearer(req.headers.authorization) !== app.opts.requestToken) {
      send(res, 401, { message: 'Bad credentials: a bearer ACTIONS_ID_TOKEN_REQUEST_TOKEN is required' });
      return;
    }
    const claims = app.tokens.claims(u.searchParams);
    send(res, 200, { count: app.tokens.count + 1, value: app.tokens.sign(claims) });
    return;
  }
  if (m === 'GET' && (p === '/oidc/jwks' || p === '/oidc/.well-known/jwks')) {
    send(res, 200, app.tokens.jwks());
    return;
  }
  if (m === 'GET' && p === '/oidc/.well-known/openid-configuration') {
    send(res, 200, {
      issuer: GITHUB_ISSUER,
      jwks_uri: `${app.url}/oidc/jwks`,
      subject_types_supported: ['public', 'pairwise'],
      response_types_supported: ['id_token'],
      claims_supported: ['sub', 'aud', 'exp', 'iat', 'iss', 'jti', 'nbf', 'ref', 'sha', 'repository', 'repository_id',
        'repository_owner', 'repository_owner_id', 'run_id', 'run_number', 'run_attempt', 'actor', 'actor_id', 'workflow',
        'workflow_ref', 'workflow_sha', 'head_ref', 'base_ref', 'event_name', 'ref_type', 'ref_protected', 'environment',
        'job_workflow_ref', 'job_workflow_sha', 'repository_visibility', 'runner_environment'],
      id_token_signing_alg_values_supported: ['ES256'],
      scopes_supported: ['openid'],
    });
    return;
  }

  // ---- Fulcio ------------------------------------------------------------------------------
  if (m === 'POST' && p === '/api/v2/signingCert') {
    send(res, 201, await app.fulcio.signingCertV2(body, req.headers.authorization));
    return;
  }
  if (m === 'POST' && p === '/api/v1/signingCert') {
    send(res, 201, await app.fulcio.signingCertV1(body, req.headers.authorization), 'application/pem-certificate-chain');
    return;
  }
  if (m === 'GET' && p === '/api/v1/rootCert') {
    send(res, 200, app.intermediatePEM + app.rootPEM, 'application/pem-certificate-chain');
    return;
  }
  if (m === 'GET' && p === '/api/v2/trustBundle') {
    send(res, 200, { chains: [{ certificates: [app.intermediatePEM, app.rootPEM] }] });
    return;
  }
  if (m === 'GET' && p === '/api/v2/configuration') {
    send(res, 200, { issuers: [{ issuerUrl: GITHUB_ISSUER, audience: FULCIO_AUDIENCE, challengeClaim: 'sub' }] });
    return;
  }

  // ---- Rekor v1 ----------------------------------------------------------------------------
  const tlog = app.tlog;
  if (m === 'POST' && p === '/api/v1/log/entries') {
    const { entry, indexKeys } = canonicalizeEntry(parseJSON(body));
    const r = await app.rekor.fn(JSON.stringify(entry));
    if (r.statusCode !== 201) throw new HttpError(r.statusCode || 500, String(r.response));
    const [mocked] = Object.values(JSON.parse(r.response));
    const canonicalBody = Buffer.from(mocked.body, 'base64');
    if (mocked.logID !== tlog.logID.toString('hex')) throw new Error('mock log ID differs from the stand-in key');
    const existing = tlog.findBody(canonicalBody);
    if (existing) {
      const id = tlog.entryID(existing);
      send(res, 409, { code: 409, message: `an equivalent entry already exists in the transparency log with UUID ${id}` },
        'application/json', { Location: `/api/v1/log/entries/${id}` });
      return;
    }
    const e = tlog.append(canonicalBody, mocked.integratedTime, indexKeys);
    const id = tlog.entryID(e);
    send(res, 201, tlog.render(e), 'application/json', { Location: `/api/v1/log/entries/${id}`, ETag: id });
    return;
  }
  if (m === 'GET' && p === '/api/v1/log/entries') {
    const idx = u.searchParams.get('logIndex');
    if (idx === null || !/^\d+$/.test(idx)) throw new HttpError(400, 'logIndex query parameter required');
    const e = tlog.entries[Number(idx)];
    if (!e) throw new HttpError(404, `no entry at log index ${idx}`);
    send(res, 200, tlog.render(e));
    return;
  }
  const byUUID = /^\/api\/v1\/log\/entries\/([0-9a-fA-F]+)$/.exec(p);
  if (m === 'GET' && byUUID) {
    const e = tlog.find(byUUID[1]);
    if (!e) throw new HttpError(404, `no entry with UUID ${byUUID[1]}`);
    send(res, 200, tlog.render(e));
    return;
  }
  if (m === 'POST' && p === '/api/v1/log/entries/retrieve') {
    const q = parseJSON(body);
    const found = [];
    for (const id of q.entryUUIDs || []) {
      const e = tlog.find(id);
      if (e) found.push(e);
    }
    for (const idx of q.logIndexes || []) {
      const e = tlog.entries[Number(idx)];
      if (e) found.push(e);
    }
    for (const pe of q.entries || []) {
      let canon;
      try {
        canon = canonicalizeEntry(pe).entry;
      } catch (err) {
        if (err instanceof HttpError) continue; // a proposal that cannot be logged is not in the log
        throw err;
      }
      const e = tlog.findBody(Buffer.from(jcs(canon)));
      if (e) found.push(e);
    }
    send(res, 200, found.map((e) => tlog.render(e)));
    return;
  }
  if (m === 'POST' && p === '/api/v1/index/retrieve') {
    const q = parseJSON(body);
    const wanted = [];
    if (typeof q.hash === 'string') wanted.push(q.hash.includes(':') ? q.hash.toLowerCase() : `sha256:${q.hash.toLowerCase()}`);
    if (q.publicKey && typeof q.publicKey.content === 'string') {
      wanted.push(keyIndex(parseVerifierPEM(Buffer.from(q.publicKey.content, 'base64'), 'publicKey').canonical));
    }
    if (wanted.length === 0) throw new HttpError(400, 'give hash or publicKey (email and other queries are not supported by the stand-in)');
    const and = (q.operator || 'and') === 'and';
    const hits = tlog.entries.filter((e) => (and ? wanted.every((w) => e.indexKeys.includes(w)) : wanted.some((w) => e.indexKeys.includes(w))));
    send(res, 200, hits.map((e) => tlog.entryID(e)));
    return;
  }
  if (m === 'GET' && p === '/api/v1/log') {
    send(res, 200, tlog.info());
    return;
  }
  if (m === 'GET' && p === '/api/v1/log/publicKey') {
    send(res, 200, tlog.publicKeyPEM, 'application/x-pem-file');
    return;
  }
  if (m === 'GET' && p === '/api/v1/log/proof') {
    const first = Number(u.searchParams.get('firstSize') || '1');
    const last = Number(u.searchParams.get('lastSize'));
    const size = tlog.leaves.length;
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last < 1 || first > last || last > size) {
      throw new HttpError(400, `need 0 <= firstSize <= lastSize <= ${size}`);
    }
    send(res, 200, {
      rootHash: tlog.root(0, last).toString('hex'),
      hashes: tlog.consistencyProof(first, last).map((h) => h.toString('hex')),
    });
    return;
  }

  throw new HttpError(404, `no route for ${m} ${u.pathname}`);
}

main().catch((e) => {
  log(`fatal: ${e.stack || e}`);
  process.exit(1);
});
