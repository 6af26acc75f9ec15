import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bindRelay } from '../bind.mjs';

/** A stand-in for the wasm-bindgen module: counts resets and object constructions. */
function fakeRelay() {
  const relay = {
    resets: 0,
    built: [],
    behaviour: () => 'ok',
    __worker_init_state: () => ({ criticalError: false, instanceId: 0 }),
    __wbg_reset_state() {
      relay.resets++;
    },
    fetch: (request) => relay.behaviour(request),
    deliverEvents: async (env, queue, body, attempts) => relay.behaviour([queue, body, attempts]),
  };
  class Room {
    constructor(state, env) {
      this.generation = relay.resets;
      relay.built.push({ state, env });
    }
    fetch(request) {
      return relay.behaviour(request, this.generation);
    }
    webSocketMessage(ws, message) {
      return `${ws}:${message}:${this.generation}`;
    }
  }
  relay.Room = Room;
  relay.Directory = Room;
  relay.RoomShard = Room;
  return relay;
}

function fakeScope() {
  const listeners = {};
  return {
    listeners,
    addEventListener(type, listener) {
      listeners[type] = listener;
    },
  };
}

const quiet = (t) => {
  t.mock.method(console, 'error', () => {});
  t.mock.method(console, 'log', () => {});
};

test('entry points reach the wasm exports with their arguments and answers', () => {
  const relay = fakeRelay();
  const bound = bindRelay(relay, fakeScope());
  assert.equal(bound.handler.fetch('req', {}, {}), 'ok');
  const room = new bound.Room('state', 'env');
  assert.deepEqual(relay.built, [{ state: 'state', env: 'env' }]);
  assert.equal(room.webSocketMessage('ws', 'hello'), 'ws:hello:0');
  assert.equal(relay.resets, 0);
});

test('after a wasm trap the next event resets the module and rebuilds the object', (t) => {
  quiet(t);
  const relay = fakeRelay();
  const bound = bindRelay(relay, fakeScope());
  const room = new bound.Room('state', 'env');
  relay.behaviour = () => {
    throw new WebAssembly.RuntimeError('unreachable');
  };
  assert.throws(() => room.fetch('req'), WebAssembly.RuntimeError);
  assert.equal(relay.resets, 0, 'the reset waits for the next event');
  relay.behaviour = (_request, generation) => `generation ${generation}`;
  assert.equal(room.fetch('req'), 'generation 1');
  assert.equal(relay.resets, 1);
  assert.equal(relay.built.length, 2, 'the object was rebuilt once');
  assert.equal(room.fetch('req'), 'generation 1');
  assert.equal(relay.resets, 1, 'one trap, one reset');
});

test('other errors pass through without a reset', (t) => {
  quiet(t);
  const relay = fakeRelay();
  const bound = bindRelay(relay, fakeScope());
  relay.behaviour = () => {
    throw new TypeError('bad');
  };
  assert.throws(() => bound.handler.fetch('req'), TypeError);
  relay.behaviour = () => 'ok';
  assert.equal(bound.handler.fetch('req'), 'ok');
  assert.equal(relay.resets, 0);
});

test('a trap in work that went on after the answer still leads to a reset', async (t) => {
  quiet(t);
  const relay = fakeRelay();
  const bound = bindRelay(relay, fakeScope());
  relay.behaviour = () => Promise.reject(new WebAssembly.RuntimeError('unreachable'));
  await assert.rejects(bound.handler.fetch('req'), WebAssembly.RuntimeError);
  relay.behaviour = () => 'ok';
  assert.equal(bound.handler.fetch('req'), 'ok');
  assert.equal(relay.resets, 1);
});

test('a trap reported to the global scope leads to a reset', (t) => {
  quiet(t);
  const relay = fakeRelay();
  const scope = fakeScope();
  const bound = bindRelay(relay, scope);
  scope.listeners.error({ error: new WebAssembly.RuntimeError('unreachable') });
  scope.listeners.unhandledrejection({ reason: new Error('not a trap') });
  assert.equal(bound.handler.fetch('req'), 'ok');
  assert.equal(relay.resets, 1);
});

test('the queue handler hands each message to deliverEvents and applies its answer', async () => {
  const relay = fakeRelay();
  const seen = [];
  relay.behaviour = (args) => {
    seen.push(args);
    return '{"action":"ack"}';
  };
  const bound = bindRelay(relay, fakeScope());
  const message = { body: '{"room":"r"}', attempts: 2, acked: 0, ack: () => message.acked++ };
  await bound.handler.queue({ queue: 'edge-relay-events', messages: [message] }, {});
  assert.deepEqual(seen, [['edge-relay-events', '{"room":"r"}', 2]]);
  assert.equal(message.acked, 1);
});
