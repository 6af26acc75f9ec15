// Fakes for the client's unit tests: a manual clock, a scripted WebSocket and fetch.
import { RelayClient } from '../dist/index.js';

/** Runs every pending microtask and I/O callback (promise chains of fake fetch/getToken). */
export const settle = () => new Promise((resolve) => setImmediate(resolve));

export class FakeClock {
  t = 0;
  #timers = new Map();
  #id = 0;
  setTimeout = (fn, ms = 0) => {
    const id = ++this.#id;
    this.#timers.set(id, { at: this.t + Math.max(0, ms), fn, id });
    return id;
  };
  clearTimeout = (id) => void this.#timers.delete(id);
  now = () => this.t;
  get pending() {
    return [...this.#timers.values()];
  }
  /** Advances time by `ms`, running due timers in order. */
  async tick(ms = 0) {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next = null;
      for (const tm of this.#timers.values()) {
        if (tm.at <= end && (!next || tm.at < next.at || (tm.at === next.at && tm.id < next.id))) next = tm;
      }
      if (!next) break;
      this.#timers.delete(next.id);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await settle();
  }
}

export function fakeSockets(user = { id: 'alice', name: 'Alice' }) {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = [];
      this.readyState = 0;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    get params() {
      return new URL(this.url).searchParams;
    }
    /** The token offered in the subprotocol list (`relay.v1`, `bearer.<jwt>`). */
    get token() {
      const bearer = [].concat(this.protocols ?? []).find((p) => p.startsWith('bearer.'));
      return bearer && bearer.slice('bearer.'.length);
    }
    send(text) {
      if (this.readyState !== 1) throw new Error('not open');
      this.sent.push(JSON.parse(text));
    }
    close(code) {
      this.readyState = 3;
      this.closedWith = code ?? 1005;
    }
    push(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    /** Opens and sends the welcome. */
    welcome(extra = {}) {
      this.readyState = 1;
      this.protocol = 'relay.v1';
      this.onopen?.({});
      this.push({ type: 'welcome', room: 'chat:1', conn_id: 'c' + sockets.length, user, seq: 0, presence: [user], reads: [], ...extra });
    }
    serverClose(code = 1006, reason = '') {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    fail() {
      this.onerror?.({});
      this.serverClose(1006);
    }
    published() {
      return this.sent.filter((f) => f.type === 'publish');
    }
  }
  return { sockets, FakeWebSocket, last: () => sockets[sockets.length - 1], user };
}

export const msg = (seq, extra = {}) => ({
  type: 'message',
  room: 'chat:1',
  seq,
  id: 'id' + seq,
  event: 'message',
  data: { text: 'm' + seq },
  from: { id: 'bob', name: 'Bob' },
  ts: '2026-11-21T09:00:00.000Z',
  ...extra,
});

/**
 * A client wired to fakes. `http(call)` answers fetches: return `{status, body, headers}`
 * (or a promise of it); calls are recorded in `calls` as `{method, url, path, query, body, auth}`.
 */
/**
 * A fetch that `http(call)` answers: return `{status, body, headers}` (or a promise of it);
 * calls are recorded in `calls` as `{method, url, path, query, body, auth}`.
 */
export function fakeFetch(http, calls = []) {
  return async (url, init) => {
    const u = new URL(url);
    const call = {
      method: init.method,
      url: u,
      path: decodeURIComponent(u.pathname),
      query: Object.fromEntries(u.searchParams),
      body: init.body ? JSON.parse(init.body) : undefined,
      auth: init.headers.authorization,
    };
    calls.push(call);
    const r = (await http?.(call)) ?? { status: 503, body: { error: { code: 'internal', message: 'no fake' } } };
    if (r.throws) throw new TypeError('network error');
    return {
      ok: r.status >= 200 && r.status < 300,
      status: r.status,
      json: async () => r.body,
      headers: { get: (h) => r.headers?.[h.toLowerCase()] ?? null },
    };
  };
}

/**
 * A client wired to fakes. `http(call)` answers fetches (see fakeFetch); calls are recorded in
 * `calls`.
 */
export function setup({ http, client: options = {}, user } = {}) {
  const clock = new FakeClock();
  const ws = fakeSockets(user);
  const calls = [];
  const fetch = fakeFetch(http, calls);
  const client = RelayClient.connect({
    url: 'http://relay.test',
    room: 'chat:1',
    token: 'T1',
    WebSocket: ws.FakeWebSocket,
    fetch,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random: () => 0.5,
    events: null,
    heartbeat: 0,
    ...options,
  });
  const events = [];
  for (const type of ['message', 'status', 'error', 'presence', 'typing', 'read', 'reset', 'synced', 'auth']) {
    client.on(type, (v) => events.push([type, v]));
  }
  const of = (type) => events.filter((e) => e[0] === type).map((e) => e[1]);
  /** Advances time until the client opens its next socket (at most `max` ms); returns it. */
  const next = async (max = 30000) => {
    const count = ws.sockets.length;
    for (let waited = 0; ws.sockets.length === count; waited += 10) {
      if (waited > max) throw new Error('no new socket within ' + max + ' ms');
      await clock.tick(10);
    }
    return ws.last();
  };
  return {
    clock,
    ws,
    next,
    client,
    calls,
    events,
    of,
    seqs: () => of('message').map((m) => m.seq),
    /** Every URL the client opened: sockets and HTTP requests. */
    urls: () => [...ws.sockets.map((s) => s.url), ...calls.map((c) => c.url.href)],
    statuses: () => of('status'),
  };
}

/** Answers GET …/messages like the relay's history paging over `all` (ascending seqs). */
export const historyOf = (all) => (call) => {
  if (call.method !== 'GET') return undefined;
  const { after, before, limit = '50' } = call.query;
  const list = all.filter((m) => (after == null || m.seq > +after) && (before == null || m.seq < +before));
  // after=: the oldest `limit`; otherwise the newest `limit`. has_more: more beyond the page.
  const messages = after != null ? list.slice(0, +limit) : list.slice(-limit);
  return { status: 200, body: { messages, has_more: list.length > +limit } };
};
