// Send each text message in turn to URL with Node's ws client, each after the
// last one's echo, and print, as one JSON line, what came back and the agreed
// extensions (the 101's Sec-WebSocket-Extensions), or the error that ended it.
// usage: node echo_each.mjs URL PER_MESSAGE_DEFLATE_JSON MESSAGE...
import WebSocket from "ws";

const [url, optionsText, ...messages] = process.argv.slice(2);
const ws = new WebSocket(url, { perMessageDeflate: JSON.parse(optionsText) });
const echoed = [];
let error = null;
let extensions = "";
ws.on("upgrade", (response) => {
  extensions = response.headers["sec-websocket-extensions"] || "";
});
ws.on("open", () => ws.send(messages[0]));
ws.on("message", (data) => {
  echoed.push(data.toString());
  if (echoed.length < messages.length) ws.send(messages[echoed.length]);
  else ws.close(1000);
});
ws.on("error", (err) => {
  error = String(err);
});
ws.on("close", (code) => {
  console.log(JSON.stringify({ echoed, code, extensions, error }));
});
