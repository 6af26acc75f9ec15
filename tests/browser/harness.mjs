// Shared setup for the browser tests: Debian's Chromium through playwright-core, one browser
// (with its own fresh temporary profile) per user, and nothing but 127.0.0.1 on the network.
// The demo page comes from PAGE_URL, a second origin (tests/browser/static-server.mjs), and
// talks to the relay at RELAY_URL cross-origin, as an app on its own origin does; the relay
// must allow PAGE_URL's origin (ALLOWED_ORIGINS). Any console error or page error fails the
// test that saw it, unless that test announced it with `user.expectConsoleError`.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const RELAY_URL = (process.env.RELAY_URL || 'http://127.0.0.1:8788').replace(/\/+$/, '');
export const TEST_OUTPUT = path.resolve(process.env.TEST_OUTPUT || 'test-output/browser');
const relay = new URL(RELAY_URL);
if (relay.hostname !== '127.0.0.1') throw new Error(`RELAY_URL must point at 127.0.0.1, not ${relay.hostname}`);
export const PAGE_URL = (process.env.PAGE_URL || '').replace(/\/+$/, '');
if (!PAGE_URL) throw new Error('PAGE_URL is not set: serve the page with tests/browser/static-server.mjs (see run_browser in scripts/test)');
if (new URL(PAGE_URL).hostname !== '127.0.0.1') throw new Error('PAGE_URL must point at 127.0.0.1');
if (new URL(PAGE_URL).origin === relay.origin) throw new Error('PAGE_URL must be another origin than RELAY_URL');
mkdirSync(TEST_OUTPUT, { recursive: true });

export const WAIT = 15000; // the bound of every single wait
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** A browser for one user: a persistent context on a fresh temporary --user-data-dir. */
export async function launchUser(label) {
  const profile = mkdtempSync(path.join(tmpdir(), `relay-browser-${label}-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    viewport: { width: 900, height: 640 },
    timeout: 30000,
  });
  context.setDefaultTimeout(WAIT);
  const problems = [];
  const expected = new Set(); // RegExps of console errors the running test causes on purpose
  // Only the relay under test: anything not on 127.0.0.1 is aborted and reported.
  await context.route((url) => url.hostname !== '127.0.0.1', (route) => {
    problems.push(`blocked request to ${route.request().url()}`);
    return route.abort();
  });
  context.on('page', (page) => watch(page, label, problems, expected));
  for (const page of context.pages()) watch(page, label, problems, expected);
  return {
    label,
    context,
    problems,
    /** Console errors matching `pattern` are expected until the returned function is called. */
    expectConsoleError(pattern) {
      expected.add(pattern);
      return () => expected.delete(pattern);
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export const logs = [];

function watch(page, label, problems, expected) {
  page.on('pageerror', (err) => problems.push(`${label}: page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error' && msg.type() !== 'warning') return;
    const line = `${label}: ${msg.type()}: ${msg.text()}`;
    logs.push(line);
    if (msg.type() === 'error' && ![...expected].some((p) => p.test(msg.text()))) problems.push(line);
  });
}

export const uniqueRoom = (prefix) => `${prefix}:${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

/** The demo page's URL (on PAGE_URL, using the relay at RELAY_URL), joining `name` to `room` if given. */
export const demoUrl = (name, room) =>
  `${PAGE_URL}/?relay=${encodeURIComponent(RELAY_URL)}` +
  (name ? `&name=${encodeURIComponent(name)}&room=${encodeURIComponent(room)}` : '');

/** Opens the demo page, joined as `name` in `room`, and waits for the socket to be open. */
export async function openChat(user, name, room) {
  const page = user.context.pages().find((p) => p.url() === 'about:blank') || (await user.context.newPage());
  await page.goto(demoUrl(name, room), { timeout: WAIT });
  await waitStatus(page, 'open');
  return page;
}

/** A development token from the relay (DEV_MODE), for requests the tests make themselves. */
export async function devToken(user, rooms) {
  const res = await fetch(`${RELAY_URL}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, name: user, rooms }),
    signal: AbortSignal.timeout(WAIT),
  });
  if (!res.ok) throw new Error(`dev token: HTTP ${res.status}`);
  return (await res.json()).token;
}

/** Publishes `text` into `room` over HTTP as the holder of `token`; returns the receipt. */
export async function publish(token, room, text) {
  const res = await fetch(`${RELAY_URL}/v1/rooms/${encodeURIComponent(room)}/messages`, {
    method: 'POST',
    headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' },
    body: JSON.stringify({ data: { text } }),
    signal: AbortSignal.timeout(WAIT),
  });
  if (!res.ok) throw new Error(`publish to ${room}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

export const waitStatus = (page, status, timeout = WAIT) =>
  page.waitForSelector(`[data-testid=status][data-status="${status}"]`, { timeout });

/** The message list as shown: [{seq, text, from, cid}]. */
export const shown = (page) =>
  page.$$eval('#messages [data-testid=message]', (els) =>
    els.map((el) => ({
      seq: Number(el.dataset.seq),
      text: el.querySelector('[data-testid=message-text]').textContent,
      from: el.dataset.from,
    })),
  );

/** Waits until every text in `texts` is shown (bounded). */
export async function waitForTexts(page, texts, timeout = WAIT) {
  await page.waitForFunction(
    (want) => {
      const have = [...document.querySelectorAll('#messages [data-testid=message-text]')].map((e) => e.textContent);
      return want.every((t) => have.includes(t));
    },
    texts,
    { timeout, polling: 100 },
  );
}

export async function sendText(page, text) {
  await page.fill('[data-testid=message-input]', text);
  await page.press('[data-testid=message-input]', 'Enter');
}

export async function screenshot(page, name) {
  const file = path.join(TEST_OUTPUT, name + '.png');
  await page.screenshot({ path: file, timeout: WAIT });
  return file;
}

/** Rejects if `promise` does not settle within `ms` (for waits Playwright does not bound). */
export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}
