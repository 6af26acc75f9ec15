// Browser tests of editing and deleting in the demo page (public/app.js): a user edits and
// deletes their own messages in place, the other page sees each change in place (no extra
// line for the relay's records), nobody gets buttons for another's message, and a reload shows
// the current versions from history. The page comes from PAGE_URL; the relay at RELAY_URL runs
// with DEV_MODE and allows it.
import { test, before, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import { WAIT, RELAY_URL, launchUser, logs, openChat, screenshot, sendText, shown, uniqueRoom, waitForTexts, waitStatus } from './harness.mjs';

let alice;
let bob;
const screenshots = [];

before(async () => {
  const health = await fetch(RELAY_URL + '/health', { signal: AbortSignal.timeout(5000) });
  assert.equal(health.status, 200, `relay at ${RELAY_URL} is not healthy`);
  [alice, bob] = await Promise.all([launchUser('alice'), launchUser('bob')]);
});

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

const line = (page, text) => page.locator('#messages [data-testid=message]', { hasText: text });

test('own messages can be edited and deleted in place; the other page follows, and so does history', { timeout: 90000 }, async () => {
  const room = uniqueRoom('edits');
  const pa = await openChat(alice, 'alice', room);
  const pb = await openChat(bob, 'bob', room);
  await sendText(pa, 'helo wrold');
  await sendText(pa, 'to be deleted');
  await sendText(pb, 'bob says hi');
  for (const p of [pa, pb]) await waitForTexts(p, ['helo wrold', 'to be deleted', 'bob says hi']);
  assert.equal(await line(pa, 'bob says hi').locator('[data-testid=edit]').count(), 0, 'no edit for another\'s message');
  assert.equal(await line(pb, 'helo wrold').locator('[data-testid=delete]').count(), 0, 'nor delete');

  await line(pa, 'helo wrold').locator('[data-testid=edit]').click();
  await pa.fill('[data-testid=edit-text]', 'hello world');
  await pa.press('[data-testid=edit-text]', 'Enter');
  await line(pa, 'to be deleted').locator('[data-testid=delete]').click();
  for (const p of [pa, pb]) {
    await waitForTexts(p, ['hello world', 'message deleted']);
    assert.deepEqual((await shown(p)).map((m) => [m.seq, m.text]), [[1, 'hello world'], [2, 'message deleted'], [3, 'bob says hi']], 'changed in place');
    assert.equal(await line(p, 'hello world').locator('.edited').count(), 1, 'marked edited');
  }
  screenshots.push(await screenshot(pb, '20-edited-and-deleted'));

  await pb.reload({ timeout: WAIT });
  await waitStatus(pb, 'open');
  await waitForTexts(pb, ['hello world', 'message deleted', 'bob says hi']);
  assert.deepEqual((await shown(pb)).map((m) => m.text), ['hello world', 'message deleted', 'bob says hi'], 'history shows the current versions and no record lines');
  await Promise.all([pa.close(), pb.close()]);
});
