'use strict';
// Node `ws` echo server: the native reference of wsserver's benchmark.
// Echo at "/", broadcast at "/bcast" (see benchmarks/servers/common.py).
//
//   node benchmarks/node/server.js --port P [--compression deflate|none]

const http = require('http');
const { WebSocketServer } = require('ws');

const MAX_SIZE = 64 * 1024 * 1024;
const BACKLOG = 1024;

function parseArgs(argv) {
  const args = { port: 0, compression: 'none' };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (name === '--port') args.port = Number(value);
    else if (name === '--compression') args.compression = value;
    else throw new Error(`unknown argument ${name}`);
  }
  if (!args.port || !['deflate', 'none'].includes(args.compression)) {
    throw new Error('usage: server.js --port P [--compression deflate|none]');
  }
  return args;
}

// The payload a "broadcast:<size>:<tag>;" trigger asks for, or null.
function broadcastPayload(message) {
  if (!message.startsWith('broadcast:')) return null;
  const size = Number(message.split(':')[1]);
  return Buffer.from(message.repeat(Math.floor(size / message.length) + 1).slice(0, size));
}

const args = parseArgs(process.argv.slice(2));
const server = http.createServer((req, res) => {
  res.writeHead(426).end();
});
const wss = new WebSocketServer({
  server,
  maxPayload: MAX_SIZE,
  clientTracking: false,
  // threshold 32: compress messages from 32 bytes on, as wsserver does
  // (ws' default, 1024, would leave the small messages of scenario g-on plain).
  perMessageDeflate: args.compression === 'deflate' ? { threshold: 32 } : false,
});
const subscribers = new Set();

wss.on('connection', (ws, req) => {
  if (req.url === '/bcast') {
    subscribers.add(ws);
    ws.on('close', () => subscribers.delete(ws));
    ws.on('message', (data, isBinary) => {
      const payload = isBinary ? null : broadcastPayload(data.toString());
      if (payload === null) return;
      for (const peer of subscribers) peer.send(payload, { binary: false });
    });
  } else {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
});

server.listen(args.port, '127.0.0.1', BACKLOG);
process.on('SIGTERM', () => process.exit(0));
