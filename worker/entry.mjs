// The Worker's module: the relay's wasm exports bound to the runtime (see bind.mjs).
import * as relay from "./index.js";
import { bindRelay } from "./bind.mjs";

const bound = bindRelay(relay, globalThis);

export default bound.handler;
export const Room = bound.Room;
export const Directory = bound.Directory;
export const RoomShard = bound.RoomShard;
