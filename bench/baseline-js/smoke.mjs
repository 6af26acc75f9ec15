// Smoke test for the benchmark baselines (bench/baseline-js and bench/baseline-node).
//
//   node bench/baseline-js/smoke.mjs http://127.0.0.1:PORT
//
// JWT_SECRET (env) must match the server's; it defaults to the baselines' local default.
// Needs Node 22 (global WebSocket). Bounded: every wait times out, and the script exits by itself.

import { createHmac, randomBytes } from "node:crypto";
import http from "node:http";

const base = new URL(process.argv[2] || process.env.BASE_URL || "http://127.0.0.1:8787");
const secret = process.env.JWT_SECRET || "baseline-dev-secret";
const TIMEOUT_MS = 5000;

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail === undefined ? "" : `: ${detail}`}`);
  }
}

const b64url = (buf) => Buffer.from(buf).toString("base64url");
function jwt(claims, { alg = "HS256", key = secret } = {}) {
  const head = b64url(JSON.stringify({ alg, typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const sig = alg === "none" ? "" : b64url(createHmac("sha256", key).update(`${head}.${body}`).digest());
  return `${head}.${body}.${sig}`;
}
const now = () => Math.floor(Date.now() / 1000);
const tokenFor = (sub) => jwt({ sub, exp: now() + 600 });

function wsUrl(room, token) {
  const u = new URL(base);
  u.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  u.pathname = `/v1/rooms/${encodeURIComponent(room)}/ws`;
  u.search = token === undefined ? "" : `?token=${encodeURIComponent(token)}`;
  return u.toString();
}

/** Status of a GET (optionally asking for a WebSocket upgrade) without completing any upgrade. */
function status(path, upgrade) {
  return new Promise((resolve, reject) => {
    const headers = upgrade
      ? {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
        }
      : {};
    const req = http.get(new URL(path, base), { headers, timeout: TIMEOUT_MS });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, body: "" });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** A WebSocket client with a queue of parsed frames and `next(predicate)`. */
function connect(room, user) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(room, tokenFor(user)));
    const frames = [];
    const waiters = [];
    const client = {
      ws,
      frames,
      send: (obj) => ws.send(typeof obj === "string" ? obj : JSON.stringify(obj)),
      next(pred = () => true, ms = TIMEOUT_MS) {
        const i = frames.findIndex(pred);
        if (i >= 0) return Promise.resolve(frames.splice(i, 1)[0]);
        return new Promise((res, rej) => {
          const w = { pred, res };
          w.timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(w), 1);
            rej(new Error(`${user}: timed out waiting for a frame`));
          }, ms);
          waiters.push(w);
        });
      },
      close: () => ws.close(),
    };
    ws.onmessage = (ev) => {
      const frame = JSON.parse(ev.data);
      const w = waiters.find((x) => x.pred(frame));
      if (w) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.res(frame);
      } else frames.push(frame);
    };
    const timer = setTimeout(() => reject(new Error(`${user}: connect timed out`)), TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(timer);
      resolve(client);
    };
    ws.onerror = () => {
      clearTimeout(timer);
      reject(new Error(`${user}: connect failed`));
    };
  });
}

async function main() {
  console.log(`smoke against ${base.origin}`);

  const health = await status("/health");
  check("GET /health is 200 with status ok", health.status === 200 && JSON.parse(health.body).status === "ok", `${health.status} ${health.body}`);

  const room = `smoke:${randomBytes(4).toString("hex")}`;
  const path = (t) => new URL(wsUrl(room, t)).pathname + new URL(wsUrl(room, t)).search;
  const bad = [
    ["no token", undefined],
    ["garbage token", "not.a.jwt"],
    ["wrong signature", jwt({ sub: "x", exp: now() + 600 }, { key: "other-secret" })],
    ["alg none", jwt({ sub: "x", exp: now() + 600 }, { alg: "none" })],
    ["expired", jwt({ sub: "x", exp: now() - 120 })],
  ];
  for (const [name, token] of bad) {
    const r = await status(path(token), true);
    check(`${name} is refused with 401`, r.status === 401, r.status);
  }
  const plain = await status(path(tokenFor("alice")), false);
  check("valid token without upgrade is 426", plain.status === 426, plain.status);

  const alice = await connect(room, "alice");
  const bob = await connect(room, "bob");
  const wa = await alice.next((f) => f.type === "welcome");
  const wb = await bob.next((f) => f.type === "welcome");
  check("welcome to alice", wa.room === room && wa.user?.id === "alice" && wa.seq === 0 && typeof wa.conn_id === "string" && Array.isArray(wa.presence), JSON.stringify(wa));
  check("welcome to bob", wb.room === room && wb.user?.id === "bob" && wb.seq === 0, JSON.stringify(wb));

  let lastSeq = 0;
  let seqsOk = true;
  let messagesOk = true;
  for (let i = 1; i <= 5; i++) {
    const cid = `c-${i}`;
    alice.send({ type: "publish", cid, data: { text: `hi ${i}`, n: i } });
    const ack = await alice.next((f) => f.type === "ack" && f.cid === cid);
    const msg = await bob.next((f) => f.type === "message" && f.cid === cid);
    if (ack.seq !== lastSeq + 1 || ack.duplicate !== false || !/^[0-9a-f]{32}$/.test(ack.id)) seqsOk = false;
    if (
      msg.seq !== ack.seq || msg.id !== ack.id || msg.ts !== ack.ts || msg.room !== room ||
      msg.event !== "message" || msg.from?.id !== "alice" || msg.data?.text !== `hi ${i}` ||
      !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(msg.ts)
    ) {
      messagesOk = false;
      console.log("  mismatch:", JSON.stringify(ack), JSON.stringify(msg));
    }
    lastSeq = ack.seq;
  }
  check("5 acks to the sender with seq 1..5, 32-hex ids, duplicate:false", seqsOk && lastSeq === 5, lastSeq);
  check("5 messages to the other socket matching the acks", messagesOk);
  check("the sender gets no copy of its own message", !alice.frames.some((f) => f.type === "message"), JSON.stringify(alice.frames));

  bob.send({ type: "publish", cid: "b-1", event: "order:new", data: null });
  const backAck = await bob.next((f) => f.type === "ack" && f.cid === "b-1");
  const back = await alice.next((f) => f.type === "message" && f.cid === "b-1");
  check("bob's publish with event and null data reaches alice", back.seq === 6 && backAck.seq === 6 && back.event === "order:new" && back.data === null && back.from?.id === "bob", JSON.stringify(back));

  alice.send('{"type":"ping"}');
  check("exact ping gets pong", (await alice.next((f) => f.type === "pong")).type === "pong");
  alice.send('{ "type": "ping" }');
  check("spaced ping gets pong", (await alice.next((f) => f.type === "pong")).type === "pong");
  alice.send("{not json");
  const err = await alice.next((f) => f.type === "error");
  check("invalid JSON gets error bad_request", err.code === "bad_request", JSON.stringify(err));
  alice.send({ type: "publish", cid: "still-open", data: 1 });
  check("socket stays open after an error", (await alice.next((f) => f.type === "ack" && f.cid === "still-open")).seq === 7);
  await bob.next((f) => f.type === "message" && f.cid === "still-open");

  const carol = await connect(room, "carol");
  const wc = await carol.next((f) => f.type === "welcome");
  check("a later welcome carries the room's last seq", wc.seq === 7, wc.seq);

  for (const c of [alice, bob, carol]) c.close();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

const guard = setTimeout(() => {
  console.log("FAIL overall timeout");
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, 60_000);
guard.unref();

main().catch((e) => {
  console.log(`FAIL ${e.message}`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
