// Edit and delete: frames, acks, the own record delivered, HTTP while polling, applyChange.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, msg } from './fakes.mjs';
import { applyChange, isChange } from '../dist/index.js';

const ack = (cid, seq, duplicate = false) => ({ type: 'ack', cid, seq, id: 'id' + seq, ts: 't' + seq, duplicate });
const changes = (ws) => ws.sent.filter((f) => f.type === 'edit' || f.type === 'delete');

test('edit and delete send their frames, resolve on the ack and deliver the own record', async () => {
  const t = setup();
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 1 });
  const edit = t.client.edit(1, { text: 'fixed' });
  const del = t.client.delete(1);
  assert.deepEqual(changes(ws), [
    { type: 'edit', cid: edit.cid, seq: 1, data: { text: 'fixed' } },
    { type: 'delete', cid: del.cid, seq: 1 },
  ]);
  assert.notEqual(edit.cid, del.cid);
  ws.push(ack(edit.cid, 2));
  ws.push(ack(del.cid, 3));
  assert.deepEqual(await edit, { seq: 2, id: 'id2', ts: 't2', duplicate: false, cid: edit.cid });
  assert.equal((await del).seq, 3);
  const [edited, deleted] = t.of('message').slice(-2);
  assert.deepEqual(edited, { type: 'message', room: 'chat:1', seq: 2, id: 'id2', event: 'message.edited', data: { text: 'fixed' }, from: { id: 'alice', name: 'Alice' }, cid: edit.cid, ts: 't2', ref_seq: 1 });
  assert.equal(deleted.event, 'message.deleted');
  assert.equal(deleted.data, null);
  assert.equal(deleted.ref_seq, 1);
  assert.equal(t.client.pending, 0);
});

test('a refused edit rejects with the relay\'s code', async () => {
  const t = setup();
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 5 });
  const p = t.client.edit(3, 'mine now', { cid: 'e1' });
  assert.equal(p.cid, 'e1');
  ws.push({ type: 'error', code: 'forbidden', message: 'only the author or a moderator may change this message', cid: 'e1' });
  await assert.rejects(p, (e) => e.code === 'forbidden' && e.cid === 'e1');
  assert.equal(t.client.pending, 0);
});

test('while polling, edits go out as PATCH and deletes as DELETE with their cid', async () => {
  const calls = [];
  const t = setup({
    client: { since: 0 },
    http: (c) => {
      if (c.method === 'GET') return { status: 200, body: { messages: [], has_more: false } };
      calls.push([c.method, c.path, c.body]);
      return { status: 200, body: { seq: calls.length, id: 'h' + calls.length, ts: 't', duplicate: false } };
    },
  });
  await t.clock.tick(0);
  for (let i = 0; i < 3; i++) {
    t.ws.last().fail();
    await t.next();
  }
  assert.equal(t.client.status, 'polling');
  const edit = t.client.edit(4, 'new', { cid: 'e' });
  const del = t.client.delete(4, { cid: 'd' });
  assert.equal((await edit).seq, 1);
  assert.equal((await del).seq, 2);
  assert.deepEqual(calls, [
    ['PATCH', '/v1/rooms/chat:1/messages/4', { cid: 'e', data: 'new' }],
    ['DELETE', '/v1/rooms/chat:1/messages/4', { cid: 'd' }],
  ]);
  t.client.close();
});

test('applyChange updates the app\'s list in place as history shows it', () => {
  const list = [msg(1), msg(2), msg(3)];
  const edit = msg(4, { event: 'message.edited', data: { text: 'new' }, ref_seq: 2, ts: 'T4' });
  assert.equal(isChange(edit), true);
  assert.equal(applyChange(list, edit), list[1]);
  assert.deepEqual([list[1].data, list[1].edited_at], [{ text: 'new' }, 'T4']);
  const del = msg(5, { event: 'message.deleted', data: null, ref_seq: 1, ts: 'T5' });
  applyChange(list, del);
  assert.deepEqual([list[0].data, list[0].deleted_at], [null, 'T5']);
  assert.equal(applyChange(list, msg(6, { event: 'message.edited', ref_seq: 99 })), null, 'not in the list');
  const forged = msg(7, { event: 'message.edited' });
  assert.equal(isChange(forged), false, 'without ref_seq no record');
  assert.equal(applyChange(list, forged), null);
  assert.equal(list[2].data.text, 'm3');
});
