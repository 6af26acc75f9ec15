// Binds the relay's wasm exports (the wasm-bindgen module) to the runtime's entry points.
//
// worker-build's own entry wraps every class in a Proxy that makes a new Proxy of each method
// on every property read, and exports the fetch handler as a class constructed per request.
// This binds plain methods and a plain `fetch`, with the same recovery after a wasm trap:
// a Rust panic aborts the instance, the next event resets the module, and each Durable Object
// rebuilds its Rust side (its state lives in storage and socket attachments).

import { settleEventBatch } from "./queue.mjs";

/** The Durable Object entry points the runtime calls. */
const OBJECT_METHODS = ["fetch", "alarm", "webSocketMessage", "webSocketClose", "webSocketError"];

/**
 * `relay`: the wasm-bindgen module (`fetch`, `deliverEvents`, `Room`, `Directory`, `RoomShard`,
 * `__worker_init_state`, `__wbg_reset_state`). `scope`: where uncaught errors and rejections are reported.
 */
export function bindRelay(relay, scope) {
  const initState = relay.__worker_init_state();

  function recoverAfterTrap() {
    if (initState.criticalError) {
      console.log("Reinitializing Wasm application");
      relay.__wbg_reset_state();
      initState.criticalError = false;
      initState.instanceId++;
    }
  }

  function noteTrap(error) {
    if (error instanceof WebAssembly.RuntimeError) {
      console.error("Critical", error);
      initState.criticalError = true;
    }
  }

  // A trap in work that continued after the entry point returned surfaces as a rejection.
  function watched(result) {
    if (result instanceof Promise) result.then(undefined, noteTrap);
    return result;
  }

  scope.addEventListener("error", (event) => noteTrap(event.error));
  scope.addEventListener("unhandledrejection", (event) => noteTrap(event.reason));

  const handler = {
    fetch(request, env, ctx) {
      recoverAfterTrap();
      try {
        return watched(relay.fetch(request, env, ctx));
      } catch (error) {
        noteTrap(error);
        throw error;
      }
    },
    // The events queue and its dead-letter queue (see queue.mjs).
    queue(batch, env) {
      return settleEventBatch(batch, env, (queue, body, attempts) => {
        recoverAfterTrap();
        try {
          return watched(relay.deliverEvents(env, queue, body, attempts));
        } catch (error) {
          noteTrap(error);
          throw error;
        }
      });
    },
  };

  /** A Durable Object class around a wasm-bindgen one, rebuilt after the module was reset. */
  function durableObject(Inner) {
    class DurableObjectEntry {
      constructor(state, env) {
        this.state = state;
        this.env = env;
        this.instanceId = initState.instanceId;
        this.inner = new Inner(state, env);
      }

      current() {
        recoverAfterTrap();
        if (this.instanceId !== initState.instanceId) {
          this.inner = new Inner(this.state, this.env);
          this.instanceId = initState.instanceId;
        }
        return this.inner;
      }
    }
    for (const name of OBJECT_METHODS) {
      DurableObjectEntry.prototype[name] = function (...args) {
        try {
          return watched(this.current()[name](...args));
        } catch (error) {
          noteTrap(error);
          throw error;
        }
      };
    }
    return DurableObjectEntry;
  }

  return {
    handler,
    Room: durableObject(relay.Room),
    Directory: durableObject(relay.Directory),
    RoomShard: durableObject(relay.RoomShard),
  };
}
