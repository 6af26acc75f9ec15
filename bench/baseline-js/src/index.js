// JavaScript baseline for edge-relay's benchmark.
//
// A Worker that verifies an HS256 JWT at connect and forwards the WebSocket to one SQLite-backed
// Durable Object per room. The room does the same observable publish work as edge-relay
// (parse, sequence, store, ack the sender, broadcast the stored JSON to every other socket) and
// nothing more: no dedup, no rate limit, no presence, no D1 archive, no resume. See README.md.

import { DurableObject } from "cloudflare:workers";

const WS_PATH = /^\/v1\/rooms\/([^/]+)\/ws$/;
const USER_HEADER = "X-Baseline-User";
const ROOM_HEADER = "X-Baseline-Room";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function fail(status, code, message) {
  return json(status, { error: { code, message } });
}

// ---- JWT (HS256 only), WebCrypto -------------------------------------------------------------

// The HMAC key is imported once per isolate (and again only if the secret changes).
let cachedSecret = null;
let cachedKey = null;

function hmacKey(secret) {
  if (secret !== cachedSecret) {
    cachedSecret = secret;
    cachedKey = crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["verify"],
    );
  }
  return cachedKey;
}

function base64urlBytes(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("bad base64url");
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

function base64urlJson(text) {
  return JSON.parse(decoder.decode(base64urlBytes(text)));
}

/** Returns the token's `sub`, or null when the token is not valid now. */
async function verifyJwt(token, secret) {
  if (!token || token.length > 8192) return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const header = base64urlJson(parts[0]);
    // Only HS256: `none` and every other algorithm are refused before the signature is looked at.
    if (!header || header.alg !== "HS256") return null;
    const signature = base64urlBytes(parts[2]);
    const signed = encoder.encode(`${parts[0]}.${parts[1]}`);
    const ok = await crypto.subtle.verify("HMAC", await hmacKey(secret), signature, signed);
    if (!ok) return null;
    const claims = base64urlJson(parts[1]);
    if (!claims || typeof claims.sub !== "string" || claims.sub.length === 0) return null;
    if (typeof claims.exp !== "number" || claims.exp <= Date.now() / 1000) return null;
    return claims.sub;
  } catch {
    return null;
  }
}

function findToken(request, url) {
  const query = url.searchParams.get("token");
  if (query) return query;
  const authorization = request.headers.get("authorization");
  if (authorization && authorization.startsWith("Bearer ")) return authorization.slice(7).trim();
  return null;
}

// ---- Worker ----------------------------------------------------------------------------------

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/health") {
      if (request.method !== "GET") return fail(405, "method_not_allowed", "use GET");
      return json(200, { status: "ok" });
    }
    const match = WS_PATH.exec(url.pathname);
    if (!match) return fail(404, "not_found", "no such route");
    if (request.method !== "GET") return fail(405, "method_not_allowed", "use GET");
    let room;
    try {
      room = decodeURIComponent(match[1]);
    } catch {
      return fail(400, "bad_request", "bad room name");
    }
    if (room.length === 0) return fail(400, "bad_request", "bad room name");

    const user = await verifyJwt(findToken(request, url), env.JWT_SECRET || "");
    if (user === null) return fail(401, "unauthorized", "invalid or expired token");
    if ((request.headers.get("upgrade") || "").toLowerCase() !== "websocket") {
      return fail(426, "upgrade_required", "expected a WebSocket upgrade");
    }

    // An internal request that only the Worker builds: client headers are not forwarded.
    const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
    return stub.fetch("https://room.internal/connect", {
      headers: {
        Upgrade: "websocket",
        [USER_HEADER]: user,
        [ROOM_HEADER]: encodeURIComponent(room),
      },
    });
  },
};

// ---- Room Durable Object ---------------------------------------------------------------------

function randomHex() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = "";
  for (let i = 0; i < 16; i++) out += bytes[i].toString(16).padStart(2, "0");
  return out;
}

function errorFrame(message, cid) {
  const frame = { type: "error", code: "bad_request", message };
  if (typeof cid === "string") frame.cid = cid;
  return JSON.stringify(frame);
}

export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, id TEXT, cid TEXT, sender TEXT, body TEXT)",
    );
    this.sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)");
    // The last seq is kept in memory, initialised from storage on every (re)start.
    this.seq = this.sql.exec("SELECT MAX(seq) AS seq FROM messages").one().seq ?? 0;
    const row = this.sql.exec("SELECT value FROM meta WHERE key = 'room'").toArray()[0];
    this.room = row ? row.value : null;
    // `{"type":"ping"}` is answered by the runtime without waking a hibernating room.
    ctx.setWebSocketAutoResponse(
      new WebSocketRequestResponsePair('{"type":"ping"}', '{"type":"pong"}'),
    );
  }

  async fetch(request) {
    if ((request.headers.get("upgrade") || "").toLowerCase() !== "websocket") {
      return fail(426, "upgrade_required", "expected a WebSocket upgrade");
    }
    const userId = request.headers.get(USER_HEADER);
    if (!userId) return fail(401, "unauthorized", "missing caller");
    if (this.room === null) {
      this.room = decodeURIComponent(request.headers.get(ROOM_HEADER) || "");
      this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('room', ?)", this.room);
    }

    const pair = new WebSocketPair();
    const client = pair[0];
    const server = pair[1];
    const connId = randomHex();
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ user: { id: userId }, conn_id: connId });
    server.send(
      JSON.stringify({
        type: "welcome",
        room: this.room,
        conn_id: connId,
        user: { id: userId },
        seq: this.seq,
        presence: [],
        reads: [],
      }),
    );
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws, raw) {
    if (typeof raw !== "string") {
      ws.send(errorFrame("binary frames are not accepted"));
      return;
    }
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      ws.send(errorFrame("frame is not a JSON object"));
      return;
    }
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
      ws.send(errorFrame("frame is not a JSON object"));
      return;
    }
    switch (frame.type) {
      case "publish":
        this.publish(ws, frame);
        return;
      case "ping":
        // Pings the auto-response did not catch (other spacing or extra fields).
        ws.send('{"type":"pong"}');
        return;
      default:
        ws.send(errorFrame("unknown or missing frame type", frame.cid));
    }
  }

  publish(ws, frame) {
    const { cid, data, event } = frame;
    if (typeof cid !== "string" || cid.length === 0 || cid.length > 64) {
      ws.send(errorFrame("publish needs a cid of 1..=64 characters"));
      return;
    }
    if (data === undefined) {
      ws.send(errorFrame("publish needs data", cid));
      return;
    }
    if (event !== undefined && typeof event !== "string") {
      ws.send(errorFrame("event must be a string", cid));
      return;
    }
    const user = ws.deserializeAttachment().user;
    const seq = this.seq + 1;
    const id = randomHex();
    const ts = new Date().toISOString();
    const body = JSON.stringify({
      type: "message",
      room: this.room,
      seq,
      id,
      event: event || "message",
      data,
      from: { id: user.id },
      cid,
      ts,
    });
    this.sql.exec(
      "INSERT INTO messages (seq, id, cid, sender, body) VALUES (?, ?, ?, ?, ?)",
      seq,
      id,
      cid,
      user.id,
      body,
    );
    this.seq = seq;
    // Output gates hold these frames until the write above is durable, as in edge-relay.
    ws.send(JSON.stringify({ type: "ack", cid, seq, id, ts, duplicate: false }));
    for (const other of this.ctx.getWebSockets()) {
      if (other === ws) continue;
      try {
        other.send(body);
      } catch {
        // A socket that is closing; its close handler cleans up.
      }
    }
  }

  async webSocketClose(ws, code, reason) {
    // Completes the closing handshake where the runtime does not do it by itself.
    try {
      ws.close(1000, "closed");
    } catch {
      // Already closed.
    }
  }

  async webSocketError() {}
}
