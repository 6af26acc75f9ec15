// A second origin for the browser tests: serves the demo page (public/) and the browser client
// (client/relay.js at /client/relay.js) on 127.0.0.1:<port>, so that the page talks to the
// relay cross-origin, as an app on its own origin does. Only the files that exist at start are
// served (no path from the request reaches the file system); they are read per request, so an
// edited page needs no restart. Run: node tests/browser/static-server.mjs <port>
import { createServer } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

const files = new Map([['/client/relay.js', path.join(root, 'client/relay.js')]]);
for (const name of readdirSync(path.join(root, 'public'))) files.set('/' + name, path.join(root, 'public', name));
files.set('/', files.get('/index.html'));

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error('usage: static-server.mjs <port>');

createServer((req, res) => {
  const file = files.get(new URL(req.url, 'http://x').pathname);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
  } else if (!file) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  } else {
    const body = readFileSync(file);
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}).listen(port, '127.0.0.1', () => console.log(`serving public/ and the client on http://127.0.0.1:${port}`));
