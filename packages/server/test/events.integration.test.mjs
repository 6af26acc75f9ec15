// Outgoing events from a real relay (wrangler dev started with EVENTS_URL on a loopback port,
// EVENTS_SECRET and EVENTS_PREFIXES, as scripts/test starts it): a receiver built on
// verifyEvents listens on that port, a backend broadcast into an events room arrives there as a
// verified, parsed message.created with the seq the broadcast returned. Needs RELAY_URL,
// WEBHOOK_SECRET, EVENTS_URL, EVENTS_SECRET and EVENTS_PREFIXES; without them it is reported
// as skipped (not passed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { RelayError, RelayServer, verifyEvents } from '../dist/index.js';

const { RELAY_URL, WEBHOOK_SECRET, EVENTS_URL, EVENTS_SECRET, EVENTS_PREFIXES } = process.env;
const needed = ['RELAY_URL', 'WEBHOOK_SECRET', 'EVENTS_URL', 'EVENTS_SECRET', 'EVENTS_PREFIXES'];
const missing = needed.filter((name) => !process.env[name]);
const skip = missing.length > 0 && `SKIPPED: needs a relay with events (${missing.join(', ')} not set)`;
const WAIT_MS = 20_000;

test('a broadcast reaches a verifyEvents receiver on EVENTS_URL as a typed message.created', { skip }, async () => {
  const events = [];
  let refusedDeliveries = 0;
  let arrived = () => {};
  // The receiver of README "Receiving events", answering the relay's deliveries to any room.
  const receiver = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    try {
      const delivered = await verifyEvents({ body: Buffer.concat(chunks), signature: req.headers['x-relay-signature'] }, EVENTS_SECRET);
      events.push(...delivered);
      res.writeHead(204).end();
      arrived();
    } catch (error) {
      refusedDeliveries += 1;
      res.writeHead(RelayError.is(error) ? error.status : 500).end();
    }
  });
  const url = new URL(EVENTS_URL);
  await new Promise((resolve, reject) => receiver.once('error', reject).listen(Number(url.port), url.hostname, resolve));
  try {
    const room = `${EVENTS_PREFIXES.split(',')[0].trim()}sdk-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const relay = new RelayServer({ url: RELAY_URL, webhookSecret: WEBHOOK_SECRET });
    const { results } = await relay.broadcast([room], 'order:new', { order: 42, text: 'é€😀' }, { id: `sdk-events-${room}` });
    assert.equal(typeof results[0]?.seq, 'number', JSON.stringify(results));
    const find = () => events.find((e) => e.room === room && e.type === 'message.created');
    const deadline = Date.now() + WAIT_MS;
    while (!find() && Date.now() < deadline) {
      await new Promise((resolve) => {
        arrived = resolve;
        setTimeout(resolve, 250);
      });
    }
    const event = find();
    assert.ok(event, `no message.created for ${room} within ${WAIT_MS} ms; got ${JSON.stringify(events)}`);
    assert.equal(event.seq, results[0].seq);
    assert.equal(event.user, null);
    assert.deepEqual([event.message.seq, event.message.event, event.message.data], [results[0].seq, 'order:new', { order: 42, text: 'é€😀' }]);
    assert.equal(typeof event.id, 'string');
    assert.equal(refusedDeliveries, 0, 'a delivery from the relay did not verify');
  } finally {
    await new Promise((resolve) => receiver.close(resolve));
  }
});
