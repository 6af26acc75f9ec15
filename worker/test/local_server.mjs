// A real HTTP server on a free 127.0.0.1 port for the tests of the modules that fetch
// (events, the publish hook, JWKS): started with a node:http handler, stopped with its
// connections.
import http from "node:http";

/** Starts a server with `handler`; returns the URL of `path` on it and a stop function. */
export async function serve(handler, path) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}${path}`;
  const stop = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return { url, stop };
}
