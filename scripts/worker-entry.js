// The Worker's module: binds the relay's wasm exports to the runtime's entry points.
//
// worker-build's own entry wraps every class in a Proxy that makes a new Proxy of each method
// on every property read, and exports the fetch handler as a class constructed per request.
// This one binds plain methods and a plain `fetch`, with the same recovery after a wasm trap:
// a Rust panic aborts the instance, the next event re-instantiates the module, and each
// Durable Object rebuilds its Rust side (its state lives in storage and socket attachments).
import * as relay from "./index.js";

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

addEventListener("error", (event) => noteTrap(event.error));
addEventListener("unhandledrejection", (event) => noteTrap(event.reason));

export default {
  fetch(request, env, ctx) {
    recoverAfterTrap();
    try {
      return watched(relay.fetch(request, env, ctx));
    } catch (error) {
      noteTrap(error);
      throw error;
    }
  },
};

/** A Durable Object class around a wasm-bindgen one, rebuilt after the module was reset. */
function durableObject(Inner) {
  return class {
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

    fetch(request) {
      try {
        return watched(this.current().fetch(request));
      } catch (error) {
        noteTrap(error);
        throw error;
      }
    }

    alarm() {
      try {
        return watched(this.current().alarm());
      } catch (error) {
        noteTrap(error);
        throw error;
      }
    }

    webSocketMessage(ws, message) {
      try {
        return watched(this.current().webSocketMessage(ws, message));
      } catch (error) {
        noteTrap(error);
        throw error;
      }
    }

    webSocketClose(ws, code, reason, wasClean) {
      try {
        return watched(this.current().webSocketClose(ws, code, reason, wasClean));
      } catch (error) {
        noteTrap(error);
        throw error;
      }
    }

    webSocketError(ws, error) {
      try {
        return watched(this.current().webSocketError(ws, error));
      } catch (thrown) {
        noteTrap(thrown);
        throw thrown;
      }
    }
  };
}

export const Room = durableObject(relay.Room);
export const Directory = durableObject(relay.Directory);
