// The demo chat: a development token from POST /dev/token, the last 50 messages over HTTP,
// then a RelayClient resuming after them. Message ids/data-testid attributes are used by
// tests/browser; keep them stable.
import { RelayClient } from '/client/relay.js';

const $ = (id) => document.getElementById(id);
const STATUS_TEXT = {
  idle: 'not connected',
  connecting: 'connecting…',
  open: 'connected',
  reconnecting: 'reconnecting…',
  polling: 'offline mode (HTTP polling)',
  offline: 'offline: waiting for the network',
  closed: 'disconnected',
};

let room = null;
let me = null; // user id (the name)
const typing = new Map(); // user id -> {name, timer}

const nameOf = (user) => (user ? user.name || user.id : 'system');
const isMine = (m) => m.from && m.from.id === me;

async function devToken(user, roomName) {
  const res = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, name: user, rooms: [roomName] }),
  });
  if (!res.ok) {
    throw new Error(res.status === 404
      ? 'This relay does not hand out development tokens (DEV_MODE is not set).'
      : `Token request failed: HTTP ${res.status}`);
  }
  return (await res.json()).token;
}

function setStatus(status) {
  const el = $('status');
  el.dataset.status = status;
  const queued = room ? room.pending : 0;
  el.textContent = STATUS_TEXT[status] + (queued ? ` · ${queued} queued` : '');
  $('online').classList.toggle('stale', status !== 'open');
  $('chat').dataset.status = status;
  $('online-note').hidden = status !== 'polling';
}

function showBanner(text) {
  const el = $('banner');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(showBanner.timer);
  showBanner.timer = setTimeout(() => (el.hidden = true), 6000);
}

// ---- messages
function textOf(data) {
  if (data && typeof data.text === 'string') return data.text;
  return JSON.stringify(data);
}

function renderMessage(m) {
  const li = document.createElement('li');
  li.className = 'message' + (isMine(m) ? ' own' : '');
  li.dataset.testid = 'message';
  li.dataset.seq = m.seq;
  li.dataset.id = m.id;
  li.dataset.from = m.from ? m.from.id : '';
  if (m.cid) li.dataset.cid = m.cid;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const author = document.createElement('span');
  author.className = 'author';
  author.textContent = nameOf(m.from);
  const time = document.createElement('time');
  time.dateTime = m.ts;
  time.textContent = new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const seq = document.createElement('span');
  seq.className = 'seq';
  seq.textContent = '#' + m.seq;
  meta.append(author, ' ', time, ' ', seq);
  const text = document.createElement('div');
  text.className = 'text';
  text.dataset.testid = 'message-text';
  text.textContent = textOf(m.data);
  const seen = document.createElement('div');
  seen.className = 'seen';
  seen.dataset.testid = 'seen';
  li.append(meta, text, seen);

  const scroll = $('scroll');
  const atBottom = scroll.scrollHeight - scroll.scrollTop - scroll.clientHeight < 40;
  $('messages').append(li);
  if (atBottom || isMine(m)) scroll.scrollTop = scroll.scrollHeight;
  if (m.cid && isMine(m)) document.querySelector(`#outbox [data-cid="${CSS.escape(m.cid)}"]`)?.remove();
}

// "Seen by …" under my latest message: everyone else whose read marker reached it.
function renderSeen() {
  if (!room) return;
  const mine = [...document.querySelectorAll('#messages .message.own')];
  for (const li of mine) li.querySelector('.seen').textContent = '';
  const last = mine.at(-1);
  if (!last) return;
  const seq = Number(last.dataset.seq);
  const readers = [...room.reads.values()].filter((r) => r.user.id !== me && r.seq >= seq).map((r) => nameOf(r.user));
  last.querySelector('.seen').textContent = readers.length ? 'seen by ' + readers.join(', ') : '';
}

let readTimer = null;
function markReadSoon() {
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (room && document.visibilityState === 'visible' && room.lastSeq) room.markRead(room.lastSeq);
  }, 200);
}

// ---- presence and typing
function renderOnline() {
  const ul = $('online');
  ul.replaceChildren(...room.presence.map((u) => {
    const li = document.createElement('li');
    li.dataset.user = u.id;
    li.textContent = nameOf(u) + (u.id === me ? ' (you)' : '');
    return li;
  }));
  $('online-count').textContent = `(${room.presence.length})`;
}

function renderTyping() {
  const names = [...typing.values()].map((t) => t.name);
  const el = $('typing');
  el.dataset.users = [...typing.keys()].join(',');
  el.textContent = !names.length ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
}

function setTyping(user, active) {
  const old = typing.get(user.id);
  if (old) clearTimeout(old.timer);
  if (active) {
    // A typing:true is refreshed every 2 s while someone types; forget it after 6 s of silence.
    typing.set(user.id, { name: nameOf(user), timer: setTimeout(() => setTyping(user, false), 6000) });
  } else typing.delete(user.id);
  renderTyping();
}

// ---- sending
function queueSend(text) {
  const p = room.send({ text });
  const li = document.createElement('li');
  li.className = 'pending';
  li.dataset.cid = p.cid;
  li.dataset.testid = 'pending';
  li.textContent = text;
  $('outbox').append(li);
  $('scroll').scrollTop = $('scroll').scrollHeight;
  setStatus(room.status);
  p.then(
    () => setStatus(room.status),
    (err) => {
      li.classList.add('failed');
      li.title = err.message;
      li.dataset.error = err.code;
      setStatus(room.status);
    },
  );
  return p;
}

// ---- joining and leaving
async function join(name, roomName) {
  $('join-error').hidden = true;
  $('join-button').disabled = true;
  try {
    const first = await devToken(name, roomName);
    me = name;
    let since;
    $('messages').replaceChildren();
    $('outbox').replaceChildren();
    try {
      const page = await RelayClient.history({ url: location.origin, room: roomName, token: first, limit: 50 });
      for (const m of page.messages) renderMessage(m);
      since = page.messages.length ? page.messages.at(-1).seq : 0;
    } catch (err) {
      console.warn('history unavailable, starting live', err);
    }
    let token = first;
    room = RelayClient.connect({
      url: location.origin,
      room: roomName,
      since,
      getToken: async () => {
        const t = token || (await devToken(name, roomName));
        token = null; // the next call (after a 4001 or 401) asks for a fresh one
        return t;
      },
    });
    window.__relay = { room, RelayClient };
    room.on('status', setStatus);
    room.on('message', (m) => {
      renderMessage(m);
      renderSeen();
      if (m.from) setTyping(m.from, false);
      markReadSoon();
    });
    room.on('presence', (f) => {
      if (f.event === 'leave') setTyping(f.user, false);
      renderOnline();
    });
    room.on('typing', (f) => f.user.id !== me && setTyping(f.user, f.active));
    room.on('read', renderSeen);
    room.on('welcome', () => {
      renderSeen();
      markReadSoon();
    });
    room.on('error', (err) => showBanner(`${err.code}: ${err.message}`));
    room.on('reset', (r) => showBanner(`history was reset (from #${r.from} to #${r.seq})`));

    $('join').hidden = true;
    $('chat').hidden = false;
    $('room-title').textContent = '#' + roomName;
    document.title = `#${roomName} · edge-relay`;
    setStatus(room.status);
    renderSeen();
    const url = new URL(location.href);
    url.searchParams.set('name', name);
    url.searchParams.set('room', roomName);
    history.replaceState(null, '', url);
    $('text').focus();
  } catch (err) {
    $('join-error').textContent = err.message;
    $('join-error').hidden = false;
  } finally {
    $('join-button').disabled = false;
  }
}

function leave() {
  if (room) room.close();
  room = null;
  for (const t of typing.values()) clearTimeout(t.timer);
  typing.clear();
  renderTyping();
  $('chat').hidden = true;
  $('join').hidden = false;
  $('room-title').textContent = '';
  setStatus('idle');
}

$('join').addEventListener('submit', (e) => {
  e.preventDefault();
  join($('name').value.trim(), $('room').value.trim());
});

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('text').value.trim();
  if (!text || !room) return;
  $('text').value = '';
  room.typing(false);
  queueSend(text).catch(() => {});
});

$('text').addEventListener('input', () => room && room.typing($('text').value.length > 0));
$('leave').addEventListener('click', leave);
document.addEventListener('visibilitychange', markReadSoon);
window.addEventListener('focus', markReadSoon);

const params = new URLSearchParams(location.search);
if (params.get('name')) $('name').value = params.get('name');
if (params.get('room')) $('room').value = params.get('room');
if (params.get('name') && params.get('room')) join(params.get('name'), params.get('room'));
