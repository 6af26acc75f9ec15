// Browser tests of the demo chat (public/) and the client (client/relay.js), the page served
// from a second origin, against a relay with DEV_MODE set that allows that origin. Run (see
// run_browser in scripts/test): RELAY_URL=http://127.0.0.1:8788 PAGE_URL=http://127.0.0.1:8789
// node --test 'tests/browser/*.test.mjs', with tests/browser/static-server.mjs serving PAGE_URL.
import { test, before, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  RELAY_URL, WAIT, demoUrl, launchUser, logs, openChat, screenshot, sendText, shown, uniqueRoom, waitForTexts, waitStatus, within,
} from './harness.mjs';

let alice;
let bob;
const screenshots = [];

before(async () => {
  const health = await fetch(RELAY_URL + '/health', { signal: AbortSignal.timeout(5000) });
  assert.equal(health.status, 200, `relay at ${RELAY_URL} is not healthy`);
  [alice, bob] = await Promise.all([launchUser('alice'), launchUser('bob')]);
});

after(async () => {
  await Promise.all([alice?.close(), bob?.close()]);
  if (screenshots.length) console.log('screenshots:\n  ' + screenshots.join('\n  '));
  if (logs.length) console.log('browser console (errors/warnings):\n  ' + logs.slice(0, 40).join('\n  '));
});

// Each test answers for the console errors and page errors seen during it, also those after
// its own last check (a page closing); the next test starts with none.
afterEach(() => {
  const seen = [...alice.problems, ...bob.problems];
  alice.problems.length = 0;
  bob.problems.length = 0;
  assert.deepEqual(seen, [], 'console errors or page errors');
});
const noProblems = () => assert.deepEqual([...alice.problems, ...bob.problems], []);

/** Both pages show the same messages, each exactly once, with seq 1..n in order. */
async function assertSameHistory(pageA, pageB, expectedTexts) {
  const [a, b] = await Promise.all([shown(pageA), shown(pageB)]);
  assert.deepEqual(a, b, 'both pages show the same list');
  assert.deepEqual(a.map((m) => m.seq), a.map((_, i) => i + 1), 'seqs 1..n, in order, no gaps, no repeats');
  const texts = a.map((m) => m.text);
  assert.equal(new Set(texts).size, texts.length, 'no message shown twice');
  assert.deepEqual([...texts].sort(), [...expectedTexts].sort(), 'every message, once');
  return a;
}

test('two pages in one room exchange messages and see typing, presence and read receipts', { timeout: 90000 }, async () => {
  const room = uniqueRoom('chat');
  const pa = await openChat(alice, 'alice', room);
  const pb = await openChat(bob, 'bob', room);

  // Presence: each sees both (join frame on one side, welcome on the other).
  await pa.waitForSelector('[data-testid=online-list] li[data-user="bob"]', { timeout: WAIT });
  await pb.waitForSelector('[data-testid=online-list] li[data-user="alice"]', { timeout: WAIT });
  assert.match(await pa.textContent('[data-testid=status]'), /connected/);

  // Typing: alice types, bob sees it; it goes away when she sends.
  await pa.fill('[data-testid=message-input]', 'hel');
  await pa.locator('[data-testid=message-input]').pressSequentially('lo');
  await pb.waitForFunction(() => /alice is typing/.test(document.querySelector('[data-testid=typing]').textContent), null, { timeout: WAIT });
  screenshots.push(await screenshot(pb, '01-bob-sees-alice-typing'));
  await pa.fill('[data-testid=message-input]', '');
  await sendText(pa, 'hello bob');
  await waitForTexts(pb, ['hello bob']);
  await pb.waitForFunction(() => document.querySelector('[data-testid=typing]').textContent === '', null, { timeout: WAIT });

  // Bob answers; alice sees it, and bob's read marker reaches her ("seen by bob").
  await pb.locator('[data-testid=message-input]').pressSequentially('hi alice');
  await pa.waitForFunction(() => /bob is typing/.test(document.querySelector('[data-testid=typing]').textContent), null, { timeout: WAIT });
  await pb.press('[data-testid=message-input]', 'Enter');
  await waitForTexts(pa, ['hi alice']);
  await sendText(pa, 'how are you?');
  await waitForTexts(pb, ['how are you?']);
  await pa.waitForFunction(
    () => [...document.querySelectorAll('#messages .message.own [data-testid=seen]')].some((e) => /seen by bob/.test(e.textContent)),
    null,
    { timeout: WAIT },
  );

  const list = await assertSameHistory(pa, pb, ['hello bob', 'hi alice', 'how are you?']);
  assert.deepEqual(list.map((m) => [m.from, m.text]), [['alice', 'hello bob'], ['bob', 'hi alice'], ['alice', 'how are you?']]);
  screenshots.push(await screenshot(pa, '02-chat-alice'), await screenshot(pb, '02-chat-bob'));

  // Leaving: bob's page goes away; alice sees him leave (after the relay's leave grace).
  await pb.close();
  await pa.waitForSelector('[data-testid=online-list] li[data-user="bob"]', { state: 'detached', timeout: WAIT });
  await pa.close();
  noProblems();
});

test('offline while sending: after recovery both pages show every message exactly once, in the same order', { timeout: 120000 }, async () => {
  const room = uniqueRoom('offline');
  const pa = await openChat(alice, 'alice', room);
  const pb = await openChat(bob, 'bob', room);
  await sendText(pa, 'before 1');
  await sendText(pb, 'before 2');
  await waitForTexts(pa, ['before 1', 'before 2']);
  await waitForTexts(pb, ['before 1', 'before 2']);

  // Alice loses the network; her socket is also force-closed in case the emulation keeps it.
  // Chromium logs each socket and request that fails meanwhile; only those are expected.
  const offlineErrorsExpected = alice.expectConsoleError(/net::ERR_INTERNET_DISCONNECTED/);
  await alice.context.setOffline(true);
  const dropped = await within(pa.evaluate(() => {
    const open = !!window.__relay.room.socket;
    window.__relay.room.socket?.close();
    return { onLine: navigator.onLine, socketStillOpen: open };
  }), WAIT, 'force-close');
  console.log('after setOffline(true):', JSON.stringify(dropped));
  // 'offline': a client that knows navigator.onLine is false says so instead of retrying.
  await pa.waitForFunction(() => ['reconnecting', 'polling', 'offline'].includes(document.querySelector('[data-testid=status]').dataset.status), null, { timeout: WAIT });
  const offline = ['offline a1', 'offline a2', 'offline a3'];
  for (const text of offline) await sendText(pa, text);
  await sendText(pb, 'while away b1');
  await sendText(pb, 'while away b2');
  await waitForTexts(pb, ['while away b1', 'while away b2']);
  assert.equal(await pa.locator('#outbox [data-testid=pending]').count(), 3, 'queued while offline');
  assert.equal((await shown(pa)).some((m) => m.text.startsWith('while away')), false);
  screenshots.push(await screenshot(pa, '03-alice-offline-queued'));

  await alice.context.setOffline(false);
  await waitStatus(pa, 'open', 30000); // bounded by the backoff cap (20 s) plus connect time
  offlineErrorsExpected();
  await pa.waitForFunction(() => document.querySelectorAll('#outbox [data-testid=pending]').length === 0, null, { timeout: WAIT });
  const all = ['before 1', 'before 2', ...offline, 'while away b1', 'while away b2'];
  await waitForTexts(pa, all);
  await waitForTexts(pb, all);
  const list = await assertSameHistory(pa, pb, all);
  const mine = list.filter((m) => m.from === 'alice').map((m) => m.text);
  assert.deepEqual(mine.filter((t) => t.startsWith('offline')), offline, "alice's queued messages in the order she sent them");
  screenshots.push(await screenshot(pa, '04-alice-recovered'), await screenshot(pb, '04-bob-after-recovery'));
  await Promise.all([pa.close(), pb.close()]);
  noProblems();
});

test('socket force-closed right after each send (ack lost): retried with the same cid, stored once', { timeout: 120000 }, async () => {
  const room = uniqueRoom('dedup');
  const pa = await openChat(alice, 'alice', room);
  const pb = await openChat(bob, 'bob', room);
  const texts = [];
  const receipts = [];
  for (let i = 1; i <= 4; i++) {
    const text = `lost ack ${i}`;
    texts.push(text);
    // The frame goes out, then the socket is closed at once: the ack can never be read.
    const receipt = pa.evaluate((t) => {
      const room = window.__relay.room;
      const p = room.send({ text: t });
      room.socket.close();
      return p;
    }, text);
    receipts.push(await within(receipt, 30000, `send of "${text}"`));
    await waitStatus(pa, 'open', 30000);
  }
  await waitForTexts(pa, texts);
  await waitForTexts(pb, texts);
  const list = await assertSameHistory(pa, pb, texts);
  assert.deepEqual(receipts.map((r) => r.seq), list.map((m) => m.seq), 'each send resolved with its message seq');
  // The relay stored each exactly once too: history over HTTP with a fresh token.
  const res0 = await fetch(`${RELAY_URL}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: 'alice', name: 'alice', rooms: [room] }),
    signal: AbortSignal.timeout(WAIT),
  });
  const { token } = await res0.json();
  const res = await fetch(`${RELAY_URL}/v1/rooms/${encodeURIComponent(room)}/messages?after=0&limit=200`, {
    headers: { authorization: 'Bearer ' + token },
    signal: AbortSignal.timeout(WAIT),
  });
  const history = await res.json();
  assert.deepEqual(history.messages.map((m) => m.data.text), texts);
  const cids = history.messages.map((m) => m.cid);
  assert.deepEqual(receipts.map((r) => r.cid), cids, 'the stored cid is the one each send kept');
  console.log(`duplicate acks (retries the relay deduplicated): ${receipts.filter((r) => r.duplicate).length} of ${receipts.length}`);
  screenshots.push(await screenshot(pb, '05-bob-after-lost-acks'));
  await Promise.all([pa.close(), pb.close()]);
  noProblems();
});

test('WebSockets failing: the page falls back to HTTP polling and switches back when they work', { timeout: 120000 }, async () => {
  const room = uniqueRoom('poll');
  let blocked = true;
  const page = await alice.context.newPage();
  await page.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    if (blocked) ws.close({ code: 1011, reason: 'blocked by the test' });
    else ws.connectToServer();
  });
  await page.goto(demoUrl('alice', room), { timeout: WAIT });
  await waitStatus(page, 'polling', 30000);
  const pb = await openChat(bob, 'bob', room);

  await sendText(page, 'sent over http');
  await waitForTexts(pb, ['sent over http']);
  await sendText(pb, 'polled by alice');
  await waitForTexts(page, ['sent over http', 'polled by alice']); // the own one comes back by poll
  assert.equal(await page.getAttribute('[data-testid=status]', 'data-status'), 'polling');
  screenshots.push(await screenshot(page, '06-alice-polling'));

  blocked = false;
  await waitStatus(page, 'open', 30000); // next background socket attempt (backoff <= 20 s)
  await sendText(page, 'back on the socket');
  await waitForTexts(pb, ['back on the socket']);
  await waitForTexts(page, ['back on the socket']);
  await assertSameHistory(page, pb, ['sent over http', 'polled by alice', 'back on the socket']);
  screenshots.push(await screenshot(page, '07-alice-back-on-websocket'));
  await Promise.all([page.close(), pb.close()]);
  noProblems();
});
