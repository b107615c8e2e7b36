// Send one random binary message of SIZE bytes to URL with Node's ws client and
// print, as one JSON line, whether it came back intact or how the server closed.
// usage: node send_one.mjs URL SIZE deflate|plain
import { randomBytes } from "node:crypto";
import WebSocket from "ws";

const [url, sizeText, mode] = process.argv.slice(2);
const size = Number(sizeText);
const payload = randomBytes(size);
const ws = new WebSocket(url, {
  perMessageDeflate: mode === "deflate" ? { threshold: 0 } : false,
  maxPayload: 0,
});
let result = null;
ws.on("open", () => ws.send(payload, { binary: true, compress: mode === "deflate" }));
ws.on("message", (data) => {
  result = { echoed: data.length, same: Buffer.compare(data, payload) === 0 };
  ws.close(1000);
});
ws.on("close", (code) => {
  const extensions = ws.extensions || "";
  console.log(JSON.stringify({ ...(result || {}), code, extensions }));
});
ws.on("error", (err) => console.log(JSON.stringify({ error: String(err) })));
