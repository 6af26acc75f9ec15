// "What teams run today" reference for edge-relay's benchmark: one Node process, the `ws`
// library, rooms and sequence numbers in memory. It speaks the subset of edge-relay's protocol
// the load tool uses (connect with ?token=, welcome, publish -> ack + message, ping/pong).
// No storage, no dedup, no rate limit, no presence. See README.md.
//
//   PORT=8788 JWT_SECRET=... node server.js

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import http from "node:http";
import { WebSocketServer } from "ws";

const HOST = "127.0.0.1";
const PORT = Number(process.env.PORT || 8788);
const SECRET = process.env.JWT_SECRET || "baseline-dev-secret";
const MAX_FRAME_BYTES = 64 * 1024;
const WS_PATH = /^\/v1\/rooms\/([^/]+)\/ws$/;

// ---- JWT (HS256 only), node:crypto -----------------------------------------------------------

/** Returns the token's `sub`, or null when the token is not valid now. */
function verifyJwt(token) {
  if (!token || token.length > 8192) return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
    // Only HS256: `none` and every other algorithm are refused before the signature is looked at.
    if (!header || header.alg !== "HS256") return null;
    const expected = createHmac("sha256", SECRET).update(`${parts[0]}.${parts[1]}`).digest();
    const given = Buffer.from(parts[2], "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    if (!claims || typeof claims.sub !== "string" || claims.sub.length === 0) return null;
    if (typeof claims.exp !== "number" || claims.exp <= Date.now() / 1000) return null;
    return claims.sub;
  } catch {
    return null;
  }
}

// ---- Routing ---------------------------------------------------------------------------------

const STATUS_TEXT = {
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  426: "Upgrade Required",
};

function errorBody(code, message) {
  return JSON.stringify({ error: { code, message } });
}

/** Checks route, method, room and token; returns {room, user} or {status, code, message}. */
function route(req) {
  const url = new URL(req.url, "http://localhost");
  const match = WS_PATH.exec(url.pathname);
  if (!match) return { status: 404, code: "not_found", message: "no such route" };
  if (req.method !== "GET") return { status: 405, code: "method_not_allowed", message: "use GET" };
  let room;
  try {
    room = decodeURIComponent(match[1]);
  } catch {
    return { status: 400, code: "bad_request", message: "bad room name" };
  }
  if (room.length === 0) return { status: 400, code: "bad_request", message: "bad room name" };
  let token = url.searchParams.get("token");
  const authorization = req.headers.authorization;
  if (!token && authorization && authorization.startsWith("Bearer ")) token = authorization.slice(7).trim();
  const user = verifyJwt(token);
  if (user === null) return { status: 401, code: "unauthorized", message: "invalid or expired token" };
  return { room, user };
}

const server = http.createServer((req, res) => {
  const send = (status, body) => {
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  };
  if (req.url === "/health" || req.url.startsWith("/health?")) {
    if (req.method !== "GET") return send(405, errorBody("method_not_allowed", "use GET"));
    return send(200, JSON.stringify({ status: "ok" }));
  }
  const r = route(req);
  if (r.status) return send(r.status, errorBody(r.code, r.message));
  send(426, errorBody("upgrade_required", "expected a WebSocket upgrade"));
});

// ---- Rooms -----------------------------------------------------------------------------------

/** room name -> { seq, sockets: Set<WebSocket> }. Kept for the process's life so a room's seq
 * never restarts while the server runs (one small object per room ever used). */
const rooms = new Map();

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });

server.on("upgrade", (req, socket, head) => {
  const r = route(req);
  if (r.status) {
    const body = errorBody(r.code, r.message);
    socket.end(
      `HTTP/1.1 ${r.status} ${STATUS_TEXT[r.status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => join(ws, r.room, r.user));
});

function errorFrame(message, cid) {
  const frame = { type: "error", code: "bad_request", message };
  if (typeof cid === "string") frame.cid = cid;
  return JSON.stringify(frame);
}

function join(ws, roomName, userId) {
  let room = rooms.get(roomName);
  if (!room) {
    room = { seq: 0, sockets: new Set() };
    rooms.set(roomName, room);
  }
  room.sockets.add(ws);
  const user = { id: userId };
  ws.send(
    JSON.stringify({
      type: "welcome",
      room: roomName,
      conn_id: randomBytes(16).toString("hex"),
      user,
      seq: room.seq,
      presence: [],
      reads: [],
    }),
  );

  ws.on("message", (raw, isBinary) => {
    if (isBinary) return ws.send(errorFrame("binary frames are not accepted"));
    let frame;
    try {
      frame = JSON.parse(raw.toString("utf8"));
    } catch {
      return ws.send(errorFrame("frame is not a JSON object"));
    }
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
      return ws.send(errorFrame("frame is not a JSON object"));
    }
    switch (frame.type) {
      case "publish":
        return publish(ws, room, roomName, user, frame);
      case "ping":
        return ws.send('{"type":"pong"}');
      default:
        return ws.send(errorFrame("unknown or missing frame type", frame.cid));
    }
  });

  ws.on("close", () => {
    room.sockets.delete(ws);
  });
  ws.on("error", () => {});
}

function publish(ws, room, roomName, user, frame) {
  const { cid, data, event } = frame;
  if (typeof cid !== "string" || cid.length === 0 || cid.length > 64) {
    return ws.send(errorFrame("publish needs a cid of 1..=64 characters"));
  }
  if (data === undefined) return ws.send(errorFrame("publish needs data", cid));
  if (event !== undefined && typeof event !== "string") return ws.send(errorFrame("event must be a string", cid));
  const seq = ++room.seq;
  const id = randomBytes(16).toString("hex");
  const ts = new Date().toISOString();
  const body = JSON.stringify({
    type: "message",
    room: roomName,
    seq,
    id,
    event: event || "message",
    data,
    from: user,
    cid,
    ts,
  });
  ws.send(JSON.stringify({ type: "ack", cid, seq, id, ts, duplicate: false }));
  for (const other of room.sockets) {
    if (other !== ws && other.readyState === 1) other.send(body);
  }
}

server.listen(PORT, HOST, () => {
  console.log(`relay-baseline-node listening on http://${HOST}:${server.address().port}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    for (const ws of wss.clients) ws.close(1012, "restarting");
    server.close();
    process.exit(0);
  });
}
