// The demo chat: a development token from POST /dev/token, a RelayClient per room that keeps its
// position in sessionStorage (a reload resumes where the page was) and shows the page of history
// before it with loadOlder() (older ones on demand); the client's inbox() over the user's own
// feed `user:<id>` keeps the room list and its unread counts. Own messages can be edited and
// deleted; the relay's records of such changes update the line they name (applyChange).
// The relay is this page's origin, or the one in `?relay=` (the page may live elsewhere: the
// relay's ALLOWED_ORIGINS must then name this page's origin). Element ids and data-testid
// attributes are used by tests/browser; keep them stable.
import { RelayClient, applyChange, inbox, isChange } from '/client/relay.js';

const $ = (id) => document.getElementById(id);
const STATUS_TEXT = {
  idle: 'not connected',
  connecting: 'connecting…',
  open: 'connected',
  reconnecting: 'reconnecting…',
  polling: 'offline mode (HTTP polling)',
  offline: 'offline (no network)',
  closed: 'disconnected',
};
const PAGE_SIZE = 50;
const MAX_ERRORS = 5; // errors shown at once; the oldest goes first
const MAX_AWAY = 20; // users who left, shown with their last seen
const MAX_ROOMS = 50; // rooms in the list

const params = new URLSearchParams(location.search);
const RELAY = relayBase(params.get('relay'));

let room = null; // the RelayClient of the open room
let roomName = null;
let feed = null; // the inbox of `user:<me>`
let me = null; // user id (the name)
const typing = new Map(); // user id -> {name, timer}
const away = new Map(); // user id -> {user, lastSeen}, newest last
const visited = new Set(); // rooms opened here, listed below those the feed reports on

const nameOf = (user) => (user ? user.name || user.id : 'system');
const isMine = (m) => m.from && m.from.id === me;

/** The relay's base URL: `?relay=` when it is an http(s) origin, else this page's origin. */
function relayBase(given) {
  if (!given) return location.origin;
  try {
    const url = new URL(given);
    if (url.protocol === 'http:' || url.protocol === 'https:') return url.origin;
  } catch {}
  return location.origin;
}

// ---- errors: each stays until dismissed; a repeat counts up instead of stacking
function showError(text) {
  const list = $('errors');
  const same = [...list.children].find((li) => li.dataset.text === text);
  if (same) {
    const count = Number(same.dataset.count) + 1;
    same.dataset.count = count;
    same.querySelector('.count').textContent = `×${count}`;
    return;
  }
  const li = document.createElement('li');
  li.dataset.testid = 'error';
  li.dataset.text = text;
  li.dataset.count = 1;
  const message = document.createElement('span');
  message.className = 'error-text';
  message.textContent = text;
  const count = document.createElement('span');
  count.className = 'count';
  const dismiss = document.createElement('button');
  dismiss.type = 'button';
  dismiss.dataset.testid = 'error-dismiss';
  dismiss.setAttribute('aria-label', 'Dismiss');
  dismiss.textContent = '×';
  dismiss.addEventListener('click', () => li.remove());
  li.append(message, count, dismiss);
  list.append(li);
  while (list.children.length > MAX_ERRORS) list.firstElementChild.remove();
}

/** A client error as the user should read it: the server's message, and the close code. */
function describe(err) {
  if (err.closeCode) return `connection closed (${err.closeCode} ${err.code}): ${err.message}`;
  return err.code && err.code !== err.message ? `${err.code}: ${err.message}` : err.message;
}

async function devToken(user, grant) {
  const res = await fetch(RELAY + '/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, name: user, rooms: [grant] }),
  });
  if (res.ok) return (await res.json()).token;
  if (res.status === 404) throw new Error('This relay does not hand out development tokens (DEV_MODE is not set).');
  let message = `HTTP ${res.status}`;
  try {
    message = (await res.json()).error.message || message;
  } catch {}
  throw new Error(`Token request failed: ${message}`);
}

function setStatus(status) {
  const el = $('status');
  el.dataset.status = status;
  const queued = room ? room.pending : 0;
  el.textContent = (STATUS_TEXT[status] || status) + (queued ? ` · ${queued} queued` : '');
  $('online').classList.toggle('stale', status !== 'open');
  $('chat').dataset.status = status;
  $('online-note').hidden = status !== 'polling';
}

// ---- messages
/** The messages shown, by seq: an edit or delete record re-renders the one it names. */
const shown = new Map();
const MAX_SHOWN = 5000; // the oldest are forgotten past this (their lines stay, unchangeable)

function textOf(data) {
  if (data && typeof data.text === 'string') return data.text;
  return JSON.stringify(data);
}

function timeText(ts) {
  const date = new Date(ts);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function messageElement(m) {
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
  time.textContent = timeText(m.ts);
  const seq = document.createElement('span');
  seq.className = 'seq';
  seq.textContent = '#' + m.seq;
  meta.append(author, ' ', time, ' ', seq);
  const text = document.createElement('div');
  text.className = 'text';
  text.dataset.testid = 'message-text';
  text.textContent = m.deleted_at ? 'message deleted' : textOf(m.data);
  if (m.deleted_at) li.classList.add('deleted');
  else if (m.edited_at) meta.append(' ', Object.assign(document.createElement('span'), { className: 'edited', textContent: '(edited)' }));
  if (isMine(m) && !m.deleted_at && m.event === 'message') meta.append(' ', ...changeButtons(m, li, text));
  const seen = document.createElement('div');
  seen.className = 'seen';
  seen.dataset.testid = 'seen';
  li.append(meta, text, seen);
  shown.set(m.seq, m);
  if (shown.size > MAX_SHOWN) shown.delete(Math.min(...shown.keys()));
  return li;
}

/** Edit (in place: Enter saves, Escape cancels) and Delete for my own messages. */
function changeButtons(m, li, text) {
  const button = (label, testid, onClick) => {
    const b = Object.assign(document.createElement('button'), { type: 'button', className: 'change', textContent: label });
    b.dataset.testid = testid;
    b.addEventListener('click', onClick);
    return b;
  };
  const failed = (err) => showError(`Could not change #${m.seq}: ${describe(err)}`);
  const edit = button('edit', 'edit', () => {
    const input = Object.assign(document.createElement('input'), { value: textOf(m.data), className: 'edit-text' });
    input.dataset.testid = 'edit-text';
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') input.replaceWith(text);
      if (e.key !== 'Enter') return;
      const value = input.value.trim();
      input.replaceWith(text);
      if (value && value !== textOf(m.data)) room.edit(m.seq, { text: value }).catch(failed);
    });
    text.replaceWith(input);
    input.focus();
  });
  const remove = button('delete', 'delete', () => room.delete(m.seq).catch(failed));
  li.dataset.changeable = '';
  return [edit, ' ', remove];
}

/** An edit or delete record: the message it names is shown as it is now. */
function applyRecord(m) {
  const target = shown.get(m.ref_seq);
  if (!target || !applyChange([target], m)) return;
  document.querySelector(`#messages [data-seq="${m.ref_seq}"]`)?.replaceWith(messageElement(target));
}

function renderMessage(m) {
  if (isChange(m)) return applyRecord(m);
  const scroll = $('scroll');
  const atBottom = scroll.scrollHeight - scroll.scrollTop - scroll.clientHeight < 40;
  $('messages').append(messageElement(m));
  if (atBottom || isMine(m)) scroll.scrollTop = scroll.scrollHeight;
  if (m.cid && isMine(m)) document.querySelector(`#outbox [data-cid="${CSS.escape(m.cid)}"]`)?.remove();
}

/** Older messages go on top; the view stays on what the reader was looking at. */
function prependMessages(messages) {
  const scroll = $('scroll');
  const height = scroll.scrollHeight;
  // History shows each message as it is now: the records themselves need no line.
  $('messages').prepend(...messages.filter((m) => !isChange(m)).map(messageElement));
  scroll.scrollTop += scroll.scrollHeight - height;
}

async function loadOlder() {
  const button = $('load-older');
  const current = room;
  button.disabled = true;
  try {
    const page = await current.loadOlder(PAGE_SIZE);
    if (current !== room) return;
    prependMessages(page.messages);
    button.hidden = !page.has_more;
    renderSeen();
  } catch (err) {
    showError(`Loading older messages failed: ${describe(err)}`);
  } finally {
    button.disabled = false;
  }
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
    if (room && document.visibilityState === 'visible' && room.lastSeq) feed ? feed.markRead(room) : room.markRead(room.lastSeq);
  }, 200);
}

// ---- presence, last seen and typing
function renderOnline() {
  const ul = $('online');
  ul.replaceChildren(...room.presence.map((u) => {
    const li = document.createElement('li');
    li.dataset.user = u.id;
    li.textContent = nameOf(u) + (u.id === me ? ' (you)' : '');
    return li;
  }));
  // A big room sends counts instead of its list (room.occupancy): show how many then.
  $('online-count').textContent = `(${room.counts.users})`;
  for (const u of room.presence) away.delete(u.id);
  renderAway();
}

function renderAway() {
  const ul = $('away');
  ul.replaceChildren(...[...away.values()].reverse().map(({ user, lastSeen }) => {
    const li = document.createElement('li');
    li.dataset.user = user.id;
    const time = document.createElement('time');
    time.dataset.testid = 'last-seen';
    time.dateTime = lastSeen;
    time.textContent = timeText(lastSeen);
    li.append(nameOf(user), ' · last seen ', time);
    return li;
  }));
}

function userLeft(frame) {
  away.delete(frame.user.id);
  away.set(frame.user.id, { user: frame.user, lastSeen: frame.last_seen || new Date().toISOString() });
  if (away.size > MAX_AWAY) away.delete(away.keys().next().value);
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

function clearTyping() {
  for (const t of typing.values()) clearTimeout(t.timer);
  typing.clear();
  renderTyping();
}

// ---- the room list, from the user's feed
function renderRooms() {
  const listed = feed ? feed.rooms : [];
  const known = new Map(listed.map((r) => [r.room, r]));
  const names = [...listed.map((r) => r.room), ...[...visited].filter((name) => !known.has(name))].slice(0, MAX_ROOMS);
  $('rooms').replaceChildren(...names.map((name) => {
    const info = known.get(name) || { unread: 0, preview: null };
    const unread = name === roomName ? 0 : info.unread;
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.room = name;
    button.title = info.preview || name;
    if (name === roomName) button.setAttribute('aria-current', 'true');
    const label = document.createElement('span');
    label.className = 'room-name';
    label.textContent = '#' + name;
    const badge = document.createElement('span');
    badge.className = 'unread';
    badge.dataset.testid = 'unread';
    badge.textContent = unread;
    badge.hidden = unread === 0;
    button.append(label, badge);
    button.addEventListener('click', () => name !== roomName && enterRoom(name).catch((err) => showError(err.message)));
    li.append(button);
    return li;
  }));
}

function startFeed(first) {
  let token = first;
  feed = inbox({
    url: RELAY,
    user: me,
    limit: MAX_ROOMS,
    getToken: async () => {
      const t = token || (await devToken(me, roomName));
      token = null; // the next call (after a 4001 or 401) asks for a fresh one
      return t;
    },
  });
  feed.on('change', renderRooms);
  feed.on('error', (err) => showError(`Room list: ${describe(err)}`));
  renderRooms();
}

// ---- sending
function queueSend(text, cid) {
  const p = room.send({ text }, cid ? { cid } : {});
  const li = document.createElement('li');
  li.className = 'pending';
  li.dataset.cid = p.cid;
  li.dataset.testid = 'pending';
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  li.append(body);
  $('outbox').append(li);
  $('scroll').scrollTop = $('scroll').scrollHeight;
  setStatus(room.status);
  p.then(
    () => setStatus(room.status),
    (err) => {
      li.classList.add('failed');
      li.dataset.error = err.code;
      const reason = document.createElement('span');
      reason.className = 'reason';
      reason.dataset.testid = 'send-error';
      reason.textContent = `not sent: ${err.message}`;
      const retry = document.createElement('button');
      retry.type = 'button';
      retry.dataset.testid = 'retry';
      retry.textContent = 'Retry';
      // The same cid: should the relay have stored it after all, it answers with the original.
      retry.addEventListener('click', () => {
        li.remove();
        if (room) queueSend(text, p.cid).catch(() => {});
      });
      const discard = document.createElement('button');
      discard.type = 'button';
      discard.dataset.testid = 'discard';
      discard.textContent = 'Discard';
      discard.addEventListener('click', () => li.remove());
      li.append(reason, retry, discard);
      if (room) setStatus(room.status);
    },
  );
  return p;
}

// ---- joining, switching rooms and leaving
async function join(name, wanted) {
  $('join-button').disabled = true;
  try {
    const first = await devToken(name, wanted);
    me = name;
    await enterRoom(wanted, first);
    $('join').hidden = true;
    $('chat').hidden = false;
    $('text').focus();
    startFeed(first);
  } catch (err) {
    leave();
    showError(err.message);
  } finally {
    $('join-button').disabled = false;
  }
}

async function enterRoom(name, first) {
  if (room) room.close();
  room = null;
  roomName = name;
  clearTyping();
  away.clear();
  renderAway();
  $('messages').replaceChildren();
  shown.clear();
  $('outbox').replaceChildren();
  $('online').replaceChildren();
  $('online-count').textContent = '';
  $('load-older').hidden = true;
  $('room-title').textContent = '#' + name;
  visited.add(name);
  document.title = `#${name} · edge-relay`;
  renderRooms();
  let token = first;
  room = RelayClient.connect({
    url: RELAY,
    room: name,
    storage: sessionStorage, // a reload resumes after the last message this tab got
    getToken: async () => {
      const t = token || (await devToken(me, name));
      token = null; // the next call (after a 4001 or 401) asks for a fresh one
      return t;
    },
  });
  window.__relay = { room, RelayClient }; // for tests/browser
  const current = room;
  const live = (fn) => (value) => current === room && fn(value);
  room.on('status', live(setStatus));
  room.on('message', live((m) => {
    renderMessage(m);
    renderSeen();
    if (m.from) setTyping(m.from, false);
    markReadSoon();
  }));
  room.on('presence', live((f) => {
    if (f.event === 'leave') {
      setTyping(f.user, false);
      userLeft(f);
    }
    renderOnline();
  }));
  room.on('occupancy', live(renderOnline));
  room.on('typing', live((f) => f.user.id !== me && setTyping(f.user, f.active)));
  room.on('read', live(renderSeen));
  room.on('welcome', live(() => {
    renderSeen();
    markReadSoon();
  }));
  room.on('error', live((err) => showError(describe(err))));
  room.on('reset', live((r) => showError(`history was reset (from #${r.from} to #${r.seq})`)));
  setStatus(room.status);
  renderSeen();
  // The page of history before what the client delivers (after a reload: before where it resumed).
  current.loadOlder(PAGE_SIZE).then(
    live((page) => {
      prependMessages(page.messages);
      $('load-older').hidden = !page.has_more;
      renderSeen();
    }),
    live((err) => showError(`History unavailable, showing new messages only: ${describe(err)}`)),
  );
  const url = new URL(location.href);
  url.searchParams.set('name', me);
  url.searchParams.set('room', name);
  history.replaceState(null, '', url);
}

function leave() {
  if (room) room.close();
  if (feed) feed.close();
  room = null;
  feed = null;
  roomName = null;
  visited.clear();
  away.clear();
  clearTyping();
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
$('load-older').addEventListener('click', loadOlder);
document.addEventListener('visibilitychange', markReadSoon);
window.addEventListener('focus', markReadSoon);

$('relay-url').textContent = RELAY;
if (params.get('name')) $('name').value = params.get('name');
if (params.get('room')) $('room').value = params.get('room');
if (params.get('name') && params.get('room')) join(params.get('name'), params.get('room'));
