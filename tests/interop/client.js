"use strict";
// A socket.io-client 4.8.4 client (websocket transport only), driven by JSON
// lines on stdin. See README.md for the protocol.

const { io } = require("socket.io-client");
const lib = require("./lib");
const { log, out, fromWire, toWire, asList, withTimeout, eventArgs } = lib;

const args = lib.parseArgs(process.argv.slice(2));
const started = lib.deferred(); // resolved when ready
const URL_ = lib.opt(args, "url", "URL", undefined);
let NSP = lib.opt(args, "nsp", "NSP", "/");
if (NSP[0] !== "/") NSP = "/" + NSP;
const NAME = lib.opt(args, "name", "NAME", `client${NSP}`);
lib.setName(NAME);
const ROOMS = asList(lib.jsonOpt(args, "rooms", "ROOMS", []));
const AUTH = lib.jsonOpt(args, "auth", "AUTH", undefined);
const PATH = lib.opt(args, "path", "SIO_PATH", "/socket.io");
const CONNECT_TIMEOUT = Number(lib.opt(args, "connect-timeout", "CONNECT_TIMEOUT", "10000"));
const MAX_LIFETIME_MS = Number(lib.opt(args, "max-lifetime-ms", "MAX_LIFETIME_MS", "600000"));

// Reply used for server acknowledgement requests; null means "use the socket id".
const cfg = {
  ack: true,
  ackReply: lib.jsonOpt(args, "ack-reply", "ACK_REPLY", null),
};

if (!URL_) {
  out({ fatal: "missing --url" });
  process.exit(1);
}

let socket;
let ready = false;

function serverJoin(event, rooms, timeout) {
  return withTimeout(
    socket.emitWithAck(event, fromWire(rooms)),
    timeout || 5000,
    `${event} ack`,
  );
}

const handlers = {
  // {"cmd":"emit","event","args","ack":bool,"timeout":ms}
  // with ack -> {"err": null|"operation has timed out", "response": [ack args]}
  async emit(msg) {
    const eargs = eventArgs(msg);
    if (msg.ack) {
      const timeout = msg.timeout === undefined ? 5000 : msg.timeout;
      return new Promise((resolve) => {
        socket.timeout(timeout).emit(msg.event, ...eargs, (err, ...response) => {
          resolve({ err: err ? err.message : null, response });
        });
      });
    }
    socket.emit(msg.event, ...eargs);
    return {};
  },
  // {"cmd":"join","rooms":[...]} -> {"reply":"ok"}
  async join(msg) {
    return { reply: await serverJoin("join", msg.rooms, msg.timeout) };
  },
  async leave(msg) {
    return { reply: await serverJoin("leave", msg.rooms, msg.timeout) };
  },
  // {"cmd":"disconnect"}
  async disconnect() {
    socket.disconnect();
    return {};
  },
  // {"cmd":"config","ack":bool,"ackReply":v}
  // Connection state recovery: close the transport under the socket (the server sees
  // "transport close" and keeps the session), then connect again, which sends
  // {pid, offset} -> {"reconnected": id, "recovered": bool} is printed on connect.
  async dropTransport() {
    socket.io.engine.close();
    return {};
  },
  async reconnect() {
    socket.connect();
    return {};
  },
  async config(msg) {
    if (msg.ack !== undefined) cfg.ack = !!msg.ack;
    if (msg.ackReply !== undefined) cfg.ackReply = msg.ackReply;
    return { config: cfg };
  },
  // {"cmd":"state"} -> {"connected": bool, "sid": ...}
  async state() {
    return { connected: socket.connected, sid: socket.id === undefined ? null : socket.id };
  },
};

async function shutdown() {
  if (socket) socket.disconnect();
}

function main() {
  lib.runCommandLoop({ gate: started.promise, handlers, shutdown, maxLifetimeMs: MAX_LIFETIME_MS });

  const url = URL_.replace(/\/$/, "") + NSP;
  socket = io(url, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    timeout: CONNECT_TIMEOUT,
    path: PATH,
    auth: AUTH === undefined ? undefined : AUTH,
  });

  const fatal = (why) => {
    if (ready) return;
    ready = true; // only once
    log("fatal:", why);
    out({ fatal: why });
    process.exit(1);
  };
  const connectTimer = setTimeout(
    () => fatal(`not connected to ${url} within ${CONNECT_TIMEOUT} ms`),
    CONNECT_TIMEOUT + 2000,
  );

  socket.onAny((event, ...rest) => {
    let ack = null;
    if (typeof rest[rest.length - 1] === "function") ack = rest.pop();
    out({ event, args: toWire(rest), ack: !!ack });
    if (ack && cfg.ack) {
      ack(cfg.ackReply === null ? socket.id : fromWire(cfg.ackReply));
    }
  });

  socket.on("connect_error", (err) => {
    if (!ready) fatal(`connect_error: ${err.message}`);
    else out({ connect_error: err.message });
  });

  socket.on("disconnect", (reason) => {
    out({ disconnected: reason });
  });

  socket.on("connect", async () => {
    if (ready) {
      out({ reconnected: socket.id, recovered: socket.recovered });
      return;
    }
    try {
      if (ROOMS.length) {
        const reply = await serverJoin("join", ROOMS);
        if (reply !== "ok") throw new Error(`join ack was ${JSON.stringify(reply)}`);
      }
    } catch (e) {
      fatal(`joining ${JSON.stringify(ROOMS)} failed: ${e.message}`);
      return;
    }
    clearTimeout(connectTimer);
    ready = true;
    started.resolve();
    log(`connected to ${url} as ${socket.id}`);
    out({ ready: true, connected: socket.id, nsp: NSP, rooms: ROOMS });
  });
}

main();
