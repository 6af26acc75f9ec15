// A 4010 close (the relay cut the socket off as a slow consumer) is not fatal and not an error:
// the client reconnects with since=lastSeq and the replay continues the stream without a gap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, msg } from './fakes.mjs';

test('4010 slow consumer reconnects with since=lastSeq, without an error, and resumes', async () => {
  const t = setup();
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 0 });
  for (const seq of [1, 2, 3]) t.ws.last().push(msg(seq));
  const sent = t.client.send({ text: 'pending' });
  t.ws.last().serverClose(4010, 'slow consumer');
  assert.equal(t.client.status, 'reconnecting');
  const ws = await t.next();
  assert.equal(ws.params.get('since'), '3', 'resumes after the last message it got');
  ws.welcome({ seq: 5 });
  for (const seq of [4, 5]) ws.push(msg(seq));
  ws.push({ type: 'synced', seq: 5 });
  assert.deepEqual(t.seqs(), [1, 2, 3, 4, 5]);
  assert.deepEqual(t.of('error'), [], '4010 is not reported as an error');
  assert.deepEqual(t.statuses(), ['open', 'reconnecting', 'open']);
  // The send queued across the cut-off goes out on the new socket.
  const cid = ws.published()[0].cid;
  ws.push({ type: 'ack', cid, seq: 6, id: 'id6', ts: '2026-11-21T09:00:00.000Z', duplicate: false });
  assert.equal((await sent).seq, 6);
});
