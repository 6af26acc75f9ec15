// Browser tests of the demo page's own features (public/): form validation, the relay's error
// messages kept until dismissed, scrollback, resuming after a reload, last seen, the room list
// with unread counts from the user's feed, retry and discard of a failed send, and the phone
// layout. The page comes
// from PAGE_URL, a second origin; the relay at RELAY_URL runs with DEV_MODE and allows it.
// WEBHOOK_SECRET (the relay's) lets the tests set a room's members, which the feed needs.
import { test, before, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  WAIT, RELAY_URL, demoUrl, devToken, launchUser, logs, openChat, publish, screenshot, sendText, shown,
  uniqueRoom, waitForTexts, waitStatus,
} from './harness.mjs';

const WEBHOOK_SECRET = process.env.WEBHOOK_SECRET;
let alice;
let bob;
const screenshots = [];

before(async () => {
  assert.ok(WEBHOOK_SECRET, 'WEBHOOK_SECRET (the relay\'s) must be set');
  const health = await fetch(RELAY_URL + '/health', { signal: AbortSignal.timeout(5000) });
  assert.equal(health.status, 200, `relay at ${RELAY_URL} is not healthy`);
  [alice, bob] = await Promise.all([launchUser('alice'), launchUser('bob')]);
});

// Each test answers for the console errors and page errors seen during it, also those after
// its own last check (a page closing); the next test starts with none.
afterEach(() => {
  const seen = [...alice.problems, ...bob.problems];
  alice.problems.length = 0;
  bob.problems.length = 0;
  assert.deepEqual(seen, [], 'console errors or page errors');
});

after(async () => {
  await Promise.all([alice?.close(), bob?.close()]);
  if (screenshots.length) console.log('screenshots:\n  ' + screenshots.join('\n  '));
  if (logs.length) console.log('browser console (errors/warnings):\n  ' + logs.slice(0, 40).join('\n  '));
});

const noProblems = () => assert.deepEqual([...alice.problems, ...bob.problems], []);
const errorTexts = (page) => page.$$eval('[data-testid=error] .error-text', (els) => els.map((e) => e.textContent));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function setMembers(room, ids) {
  const res = await fetch(`${RELAY_URL}/v1/rooms/${encodeURIComponent(room)}/members`, {
    method: 'PUT',
    headers: { authorization: 'Bearer ' + WEBHOOK_SECRET, 'content-type': 'application/json' },
    body: JSON.stringify(ids.map((id) => ({ id }))),
    signal: AbortSignal.timeout(WAIT),
  });
  assert.equal(res.status, 200, `PUT members of ${room}`);
}

test('the join form validates its inputs, and a refusal shows the relay\'s message until dismissed', { timeout: 60000 }, async () => {
  const page = await alice.context.newPage();
  await page.goto(demoUrl(), { timeout: WAIT });
  await page.waitForSelector('[data-testid=join-form]');
  // The patterns compile under the v flag (Chromium logs a console error and turns validation
  // off when they do not; noProblems below fails on that) and refuse what the relay refuses.
  await page.fill('[data-testid=name-input]', 'alice');
  await page.fill('[data-testid=room-input]', 'has space');
  assert.equal(await page.$eval('[data-testid=room-input]', (el) => el.validity.patternMismatch), true, '"has space" is refused');
  await page.fill('[data-testid=room-input]', 'a/b');
  assert.equal(await page.$eval('[data-testid=room-input]', (el) => el.validity.patternMismatch), true, '"a/b" is refused');
  await page.fill('[data-testid=room-input]', 'city:Саратов');
  assert.equal(await page.$eval('[data-testid=room-input]', (el) => el.validity.valid), true, 'a room name in any script is fine');

  // 100 Cyrillic letters pass the form (128 characters at most) but are 200 bytes: the relay
  // refuses the token request with 400, and the page shows the relay's message.
  const refusalExpected = alice.expectConsoleError(/status of 400/);
  await page.fill('[data-testid=room-input]', 'Ж'.repeat(100));
  await page.click('[data-testid=join-button]');
  await page.waitForSelector('[data-testid=error]');
  assert.deepEqual(await errorTexts(page), ['Token request failed: room name is longer than 128 bytes']);
  assert.equal(await page.isVisible('[data-testid=join-form]'), true, 'still on the form');
  // The same refusal again counts up instead of stacking.
  await page.click('[data-testid=join-button]');
  await page.waitForSelector('[data-testid=error][data-count="2"]');
  refusalExpected();
  // Still there after longer than any timeout the page had (6 s), gone when dismissed.
  await sleep(7000);
  assert.equal(await page.isVisible('[data-testid=error]'), true, 'the error stays until dismissed');
  screenshots.push(await screenshot(page, '10-refusal-shown'));
  await page.click('[data-testid=error-dismiss]');
  assert.equal(await page.locator('[data-testid=error]').count(), 0, 'dismissed');

  // A close's reason: a frame over the relay's frame limit (64 KiB) closes the socket with
  // 4009; the page shows code and reason, and the client reconnects.
  await page.fill('[data-testid=room-input]', uniqueRoom('errors'));
  await page.click('[data-testid=join-button]');
  await waitStatus(page, 'open');
  await page.evaluate(() => window.__relay.room.socket.send(JSON.stringify({ type: 'publish', cid: 'big', data: 'x'.repeat(70000) })));
  await page.waitForSelector('[data-testid=error]');
  const [closed] = await errorTexts(page);
  assert.match(closed, /^connection closed \(4009 too_large\): \S/, 'close code and the relay\'s reason');
  await waitStatus(page, 'open', 30000);
  await sleep(1000);
  assert.deepEqual(await errorTexts(page), [closed], 'kept after the reconnect');
  await page.close();
  noProblems();
});

test('load older: the page shows the last 50 messages and pages back through before=', { timeout: 90000 }, async () => {
  const room = uniqueRoom('scroll');
  // 60 messages from two users (each under the publish burst of 40).
  const texts = Array.from({ length: 60 }, (_, i) => `old ${i + 1}`);
  const [carol, dave] = await Promise.all([devToken('carol', [room]), devToken('dave', [room])]);
  for (const [i, text] of texts.entries()) await publish(i % 2 ? dave : carol, room, text);

  const page = await openChat(alice, 'alice', room);
  await waitForTexts(page, ['old 60']);
  let list = await shown(page);
  assert.deepEqual(list.map((m) => m.seq), Array.from({ length: 50 }, (_, i) => i + 11), 'the newest 50');
  assert.equal(await page.isVisible('[data-testid=load-older]'), true, 'older messages exist');

  await page.click('[data-testid=load-older]');
  await waitForTexts(page, ['old 1']);
  list = await shown(page);
  assert.deepEqual(list.map((m) => m.seq), Array.from({ length: 60 }, (_, i) => i + 1), 'all 60, ascending, once each');
  assert.deepEqual(list.map((m) => m.text), texts);
  await page.waitForSelector('[data-testid=load-older]', { state: 'hidden' });

  // Live messages still arrive at the end.
  await sendText(page, 'new one');
  await waitForTexts(page, ['new one']);
  assert.deepEqual((await shown(page)).map((m) => m.seq), Array.from({ length: 61 }, (_, i) => i + 1));
  screenshots.push(await screenshot(page, '11-scrollback'));
  await page.close();
  noProblems();
});

test('a reload resumes where the page was: what came meanwhile once, in order, after the history it had shown', { timeout: 90000 }, async () => {
  const room = uniqueRoom('reload');
  const carol = await devToken('carol', [room]);
  for (const text of ['before 1', 'before 2', 'before 3']) await publish(carol, room, text);
  const page = await openChat(alice, 'alice', room);
  await waitForTexts(page, ['before 3']);
  const key = `edge-relay:${RELAY_URL}:${room}:alice`;
  await page.waitForFunction((k) => sessionStorage.getItem(k) === '3', key, { timeout: WAIT });

  // Away (the tab keeps its sessionStorage), two messages come; back, the page resumes.
  await page.goto('about:blank');
  for (const text of ['meanwhile 4', 'meanwhile 5']) await publish(carol, room, text);
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(demoUrl('alice', room), { timeout: WAIT });
  await waitStatus(page, 'open');
  await waitForTexts(page, ['before 1', 'meanwhile 5']);
  const resumed = sockets.find((url) => url.includes('/v1/rooms/' + encodeURIComponent(room) + '/ws'));
  assert.equal(new URL(resumed).searchParams.get('since'), '3', 'the room socket resumed after the stored seq');
  const list = await shown(page);
  assert.deepEqual(list.map((m) => m.seq), [1, 2, 3, 4, 5], 'in order, each once');
  assert.deepEqual(list.map((m) => m.text), ['before 1', 'before 2', 'before 3', 'meanwhile 4', 'meanwhile 5']);
  await page.waitForFunction((k) => sessionStorage.getItem(k) === '5', key, { timeout: WAIT });
  await page.close();
  noProblems();
});

test('a user who left is listed with the last_seen of their leave', { timeout: 60000 }, async () => {
  const room = uniqueRoom('seen');
  const pa = await openChat(alice, 'alice', room);
  const pb = await openChat(bob, 'bob', room);
  await pa.waitForSelector('[data-testid=online-list] li[data-user="bob"]');
  assert.equal(await pa.locator('[data-testid=away-list] li').count(), 0, 'nobody has left yet');
  const closedAt = Date.now();
  await pb.close();
  const seen = await pa.waitForSelector('[data-testid=away-list] li[data-user="bob"] [data-testid=last-seen]');
  const when = Date.parse(await seen.getAttribute('datetime'));
  assert.ok(Math.abs(when - closedAt) < 10000, `last seen ${new Date(when).toISOString()} is when bob left`);
  assert.match(await pa.textContent('[data-testid=away-list] li[data-user="bob"]'), /^bob · last seen \d/);
  assert.equal(await pa.locator('[data-testid=online-list] li[data-user="bob"]').count(), 0, 'bob is not online');

  // Coming back moves him from "last seen" to online again.
  const pb2 = await openChat(bob, 'bob', room);
  await pa.waitForSelector('[data-testid=online-list] li[data-user="bob"]');
  await pa.waitForSelector('[data-testid=away-list] li[data-user="bob"]', { state: 'detached' });
  screenshots.push(await screenshot(pa, '12-last-seen'));
  await Promise.all([pa.close(), pb2.close()]);
  noProblems();
});

test('the room list shows unread counts from the user feed and clears them once read', { timeout: 90000 }, async () => {
  const here = uniqueRoom('here');
  const other = uniqueRoom('dialog');
  await setMembers(other, ['alice', 'bob']);
  const page = await openChat(alice, 'alice', here);
  const unreadOf = (room) => page.locator(`[data-testid=room-list] button[data-room="${room}"] [data-testid=unread]`);

  const bobToken = await devToken('bob', [other]);
  for (const text of ['ping 1', 'ping 2', 'ping 3']) await publish(bobToken, other, text);
  await page.waitForFunction(
    (room) => document.querySelector(`[data-testid=room-list] button[data-room="${room}"] [data-testid=unread]`)?.textContent === '3',
    other,
    { timeout: WAIT },
  );
  assert.equal(await unreadOf(other).isVisible(), true);
  assert.equal(await unreadOf(here).isVisible(), false, 'the open room has no badge');
  screenshots.push(await screenshot(page, '13-unread'));

  // Opening the room shows its messages and moves alice's read marker; back in the first room,
  // the feed has brought the other room's count down to 0.
  await page.click(`[data-testid=room-list] button[data-room="${other}"]`);
  await waitStatus(page, 'open');
  await waitForTexts(page, ['ping 1', 'ping 2', 'ping 3']);
  assert.equal(await page.textContent('[data-testid=room-title]'), '#' + other);
  await sleep(1000); // the page marks what it shows as read 200 ms after it arrived
  await page.click(`[data-testid=room-list] button[data-room="${here}"]`);
  await waitStatus(page, 'open');
  await page.waitForFunction(
    (room) => {
      const badge = document.querySelector(`[data-testid=room-list] button[data-room="${room}"] [data-testid=unread]`);
      return badge && badge.textContent === '0' && badge.hidden;
    },
    other,
    { timeout: WAIT },
  );

  // A new message there counts from the marker again.
  await publish(bobToken, other, 'ping 4');
  await page.waitForFunction(
    (room) => document.querySelector(`[data-testid=room-list] button[data-room="${room}"] [data-testid=unread]`)?.textContent === '1',
    other,
    { timeout: WAIT },
  );
  await page.close();
  noProblems();
});

test('a failed send can be retried or discarded', { timeout: 60000 }, async () => {
  const room = uniqueRoom('retry');
  const page = await alice.context.newPage();
  // Between page and relay: the first try of each text starting with "fail" is answered with
  // an error frame for its cid instead of reaching the relay (as a refused publish would be).
  const refused = new Set();
  await page.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((message) => {
      let frame = null;
      try {
        frame = JSON.parse(message);
      } catch {}
      const text = frame && frame.type === 'publish' && frame.data && frame.data.text;
      if (typeof text === 'string' && text.startsWith('fail') && !refused.has(text)) {
        refused.add(text);
        ws.send(JSON.stringify({ type: 'error', code: 'bad_request', message: 'refused by the test', cid: frame.cid }));
      } else server.send(message);
    });
  });
  await page.goto(demoUrl('alice', room), { timeout: WAIT });
  await waitStatus(page, 'open');
  const pb = await openChat(bob, 'bob', room);

  await sendText(page, 'fail then retry');
  const failed = page.locator('#outbox [data-testid=pending].failed');
  await failed.waitFor();
  assert.equal(await failed.locator('[data-testid=send-error]').textContent(), 'not sent: refused by the test');
  screenshots.push(await screenshot(page, '14-failed-send'));
  await failed.locator('[data-testid=retry]').click();
  await waitForTexts(page, ['fail then retry']);
  await waitForTexts(pb, ['fail then retry']);
  await page.waitForFunction(() => document.querySelectorAll('#outbox [data-testid=pending]').length === 0, null, { timeout: WAIT });

  await sendText(page, 'fail and discard');
  await failed.waitFor();
  await failed.locator('[data-testid=discard]').click();
  assert.equal(await page.locator('#outbox [data-testid=pending]').count(), 0, 'discarded');
  await sendText(page, 'after the discard');
  await waitForTexts(pb, ['after the discard']);
  for (const p of [page, pb]) {
    assert.deepEqual((await shown(p)).map((m) => m.text), ['fail then retry', 'after the discard'], 'retried once, discarded never');
  }
  await Promise.all([page.close(), pb.close()]);
  noProblems();
});

test('at 390 px the page fits: one-line header, no horizontal overflow, the composer in view', { timeout: 60000 }, async () => {
  const room = uniqueRoom('phone-with-a-rather-long-room-name');
  const page = await alice.context.newPage();
  await page.setViewportSize({ width: 390, height: 844 });
  const pb = await openChat(bob, 'bob', room);
  await page.goto(demoUrl('alice', room), { timeout: WAIT });
  await waitStatus(page, 'open');
  await page.waitForSelector('[data-testid=online-list] li[data-user="bob"]');
  await sendText(pb, 'a message long enough to need wrapping on a phone: ' + 'word '.repeat(30));
  await sendText(page, 'short answer');
  await waitForTexts(page, ['short answer']);
  const layout = await page.evaluate(() => {
    const box = (sel) => document.querySelector(sel).getBoundingClientRect();
    return {
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth,
      innerHeight,
      header: box('header').height,
      status: box('[data-testid=status]').height,
      composer: box('[data-testid=composer]').bottom,
      send: box('[data-testid=send-button]').right,
      leave: box('[data-testid=leave-button]').right,
    };
  });
  console.log('390 px layout:', JSON.stringify(layout));
  assert.ok(layout.scrollWidth <= layout.innerWidth, `no horizontal overflow (${layout.scrollWidth} > ${layout.innerWidth})`);
  assert.ok(layout.header <= 2 * layout.status + 8, `the header is one line (${layout.header} px high)`);
  assert.ok(layout.composer <= layout.innerHeight, 'the composer is in view');
  assert.ok(layout.send <= layout.innerWidth, 'the send button is in view');
  assert.ok(layout.leave <= layout.innerWidth, 'the leave button is in view');
  screenshots.push(await screenshot(page, '15-phone-390'));
  await Promise.all([page.close(), pb.close()]);
  noProblems();
});
