"use strict";
// A Node socket.io 4.0.2 server (npm alias `socket.io-4.0`) on the legacy adapter
// socket.io-redis 6.1.1 (redis 3.1.2 clients, npm alias `redis3`), driven by JSON lines
// on stdin: the previous generation of Node servers, as a cluster peer. Same line
// protocol and ready line as server.js (see README.md), with the commands that
// socket.io 4.0.2 / socket.io-redis 6.1.1 offer.
//
// What socket.io-redis 6.1.1 (dist/index.js) has, and therefore what this script offers:
// broadcasts; requests SOCKETS (0, `allSockets()`), ALL_ROOMS (1, `allRooms()`),
// the single-socket REMOTE_JOIN / REMOTE_LEAVE / REMOTE_DISCONNECT (2/3/4 with
// `sid`, `remoteJoin(id, room)`...), REMOTE_FETCH (5, `fetchSockets()`), and the `opts`
// forms of 2/3/4 without a reply (`socketsJoin`, `socketsLeave`, `disconnectSockets`,
// RemoteSocket join/leave/disconnect). It has no serverSideEmit (socket.io 4.0.2 has
// none either), no broadcast with acks (socket.io 4.0.2 throws "Callbacks are not
// supported when broadcasting"), no customRequest/customHook and no clientRooms (both
// removed in 6.0), no `uid` in requests, no specific response channel, and it parses
// every request and response as JSON.

const http = require("http");
const { Server } = require("socket.io-4.0");
const redisAdapter = require("socket.io-redis");
const redis = require("redis3");
const lib = require("./lib");
const { log, out, fromWire, toWire, asList, withTimeout, eventArgs } = lib;

const args = lib.parseArgs(process.argv.slice(2));
const started = lib.deferred(); // resolved when ready
const NAME = lib.opt(args, "name", "NAME", "legacy-server");
lib.setName(NAME);
const REDIS_URL = lib.opt(args, "redis", "REDIS_URL", "redis://127.0.0.1:6379");
const KEY = lib.opt(args, "key", "KEY", "socket.io");
const REQUESTS_TIMEOUT = Number(
  lib.opt(args, "requests-timeout", "REQUESTS_TIMEOUT", "5000"),
);
const EXTRA_NAMESPACES = String(lib.opt(args, "namespaces", "NAMESPACES", ""))
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);
// --tap: report every message on this key's request and response channels as
// {"wire": {"channel", "json": <parsed or null>, "firstByte"}} (what the adapter got).
const TAP = lib.boolOpt(args, "tap", "TAP", false);
// --plain-errors: behave like a plain Node application: no listener for the adapters'
// "error" events and no process-level handlers (lib.js installs unhandledRejection and
// uncaughtException handlers that only log). socket.io-redis 6.1.1 emits "error" for
// every request or response that is not JSON; without a listener that error ends the
// process (exit code 1). By default each one is reported as {"adapterError": ...}.
const PLAIN_ERRORS = lib.boolOpt(args, "plain-errors", "PLAIN_ERRORS", false);
const MAX_LIFETIME_MS = Number(
  lib.opt(args, "max-lifetime-ms", "MAX_LIFETIME_MS", "600000"),
);

const cfg = {
  // client emit with ack to this server (other than join/leave)
  socketAck: true,
  socketAckReply: lib.jsonOpt(args, "socket-ack-reply", "SOCKET_ACK_REPLY", NAME),
};

let io;
let httpServer;
let pubClient;
let subClient;
let barrierCounter = 0;
const STATIC_NAMES = ["/", "/admin", ...EXTRA_NAMESPACES];

// redis@3 callback API, promisified and bounded.
function call(client, method, ...cmdArgs) {
  return withTimeout(
    new Promise((resolve, reject) => {
      client[method](...cmdArgs, (err, res) => (err ? reject(err) : resolve(res)));
    }),
    10000,
    `redis ${method}`,
  );
}

// Resolves once every (P)SUBSCRIBE queued before it on the subscriber connection has
// been confirmed by Redis (replies come back in order).
async function subscriptionBarrier() {
  const ch = `__interop_barrier__#${process.pid}#${barrierCounter++}`;
  await call(subClient, "subscribe", ch);
  subClient.unsubscribe(ch);
}

// Resolves once everything published before it on the publisher connection has been
// delivered by Redis to this server's own subscriber connection (and handled
// synchronously by the adapter).
const barrierWaiters = new Map();
async function pubsubBarrier() {
  const ch = `__interop_barrier__#${process.pid}#${barrierCounter++}`;
  const got = new Promise((r) => barrierWaiters.set(ch, r));
  await call(subClient, "subscribe", ch);
  await call(pubClient, "publish", ch, "x");
  await withTimeout(got, 10000, "pubsub barrier");
  barrierWaiters.delete(ch);
  subClient.unsubscribe(ch);
}

function getNsp(name) {
  name = name === undefined || name === null ? "/" : String(name);
  if (name[0] !== "/") name = "/" + name;
  if (!STATIC_NAMES.includes(name)) throw new Error(`namespace ${name} is not served`);
  return io.of(name);
}

function middleware(socket, next) {
  const auth = socket.handshake.auth || {};
  if (auth.data !== undefined) socket.data = fromWire(auth.data);
  next();
}

function onConnection(socket) {
  const nsp = socket.nsp.name;
  out({ connection: { nsp, sid: socket.id } });
  socket.on("join", (rooms, ack) => {
    socket.join(rooms);
    if (typeof ack === "function") ack("ok");
  });
  socket.on("leave", (rooms, ack) => {
    for (const r of asList(rooms)) socket.leave(r);
    if (typeof ack === "function") ack("ok");
  });
  socket.onAny((event, ...rest) => {
    if (event === "join" || event === "leave") return;
    let ack = null;
    if (typeof rest[rest.length - 1] === "function") ack = rest.pop();
    out({
      socketEvent: { nsp, sid: socket.id, event, args: toWire(rest), ack: !!ack },
    });
    if (ack && cfg.socketAck) ack(fromWire(cfg.socketAckReply));
  });
  socket.on("disconnect", (reason) => {
    out({ disconnect: { nsp, sid: socket.id, reason } });
  });
}

// Applies to/except/volatile/local/compress to a namespace or a BroadcastOperator.
function operator(target, msg) {
  let op = target;
  const to = asList(msg.to);
  const except = asList(msg.except);
  if (to.length) op = op.to(to);
  if (except.length) op = op.except(except);
  if (msg.volatile) op = op.volatile;
  if (msg.local) op = op.local;
  if (msg.compress !== undefined) op = op.compress(!!msg.compress);
  return op;
}

function describeSocket(s, withHandshake) {
  const d = {
    id: s.id,
    rooms: [...s.rooms],
    data: s.data,
    local: s.constructor && s.constructor.name === "Socket",
  };
  if (withHandshake) d.handshake = s.handshake;
  return d;
}

async function findSocket(nsp, sid) {
  const sockets = await nsp.in(sid).fetchSockets();
  const s = sockets.find((x) => x.id === sid);
  if (!s) throw new Error(`socket ${sid} not found in ${nsp.name}`);
  return s;
}

const handlers = {
  // {"cmd":"emit","nsp","to","except","volatile","local","compress","event","args"}
  async emit(msg) {
    const nsp = getNsp(msg.nsp);
    const eargs = eventArgs(msg);
    operator(nsp, msg).emit(msg.event, ...eargs);
    await pubsubBarrier();
    return {};
  },
  // socket.broadcast.emit from a local socket
  // {"cmd":"broadcast","nsp","sid","to","except","volatile","event","args"}
  async broadcast(msg) {
    const nsp = getNsp(msg.nsp);
    const socket = nsp.sockets.get(msg.sid);
    if (!socket) throw new Error(`no local socket ${msg.sid} in ${nsp.name}`);
    const eargs = eventArgs(msg);
    operator(socket.broadcast, msg).emit(msg.event, ...eargs);
    await pubsubBarrier();
    return {};
  },
  // Operation on one (local or remote) socket, found with fetchSockets (socket.io 4.0.2
  // RemoteSocket: emit without ack, join, leave, disconnect).
  // {"cmd":"remoteSocket","nsp","sid","op":"emit"|"join"|"leave"|"disconnect","event","args","rooms","close"}
  async remoteSocket(msg) {
    const nsp = getNsp(msg.nsp);
    const s = await findSocket(nsp, msg.sid);
    switch (msg.op) {
      case "emit":
        s.emit(msg.event, ...eventArgs(msg));
        break;
      case "join":
        s.join(msg.rooms);
        break;
      case "leave":
        s.leave(msg.rooms);
        break;
      case "disconnect":
        s.disconnect(!!msg.close);
        break;
      default:
        throw new Error(`unknown op ${JSON.stringify(msg.op)}`);
    }
    await pubsubBarrier();
    return { local: s.constructor && s.constructor.name === "Socket" };
  },
  // REMOTE_FETCH: {"cmd":"fetchSockets","nsp","to","except","withHandshake"} -> {"sockets":[..]}
  async fetchSockets(msg) {
    const nsp = getNsp(msg.nsp);
    await pubsubBarrier(); // see everything Redis delivered before this command
    const sockets = await operator(nsp, msg).fetchSockets();
    return { sockets: sockets.map((s) => describeSocket(s, !!msg.withHandshake)) };
  },
  // SOCKETS: {"cmd":"allSockets","nsp","to"} -> {"sids":[..]} (io.in(to).allSockets())
  async allSockets(msg) {
    const nsp = getNsp(msg.nsp);
    await pubsubBarrier();
    const sids = await operator(nsp, { to: msg.to }).allSockets();
    return { sids: [...sids] };
  },
  // ALL_ROOMS: {"cmd":"allRooms","nsp"} -> {"rooms":[...]}
  async allRooms(msg) {
    const nsp = getNsp(msg.nsp);
    await pubsubBarrier();
    const rooms = await nsp.adapter.allRooms();
    return { rooms: [...rooms] };
  },
  // The single-socket requests of the adapter API (answered by the server that has the
  // socket; rejected with "timeout reached while waiting for remoteJoin response" when
  // nobody answers within --requests-timeout).
  // {"cmd":"remoteJoin"|"remoteLeave","nsp","sid","room"}, {"cmd":"remoteDisconnect","nsp","sid","close"}
  async remoteJoin(msg) {
    await getNsp(msg.nsp).adapter.remoteJoin(msg.sid, msg.room);
    await pubsubBarrier();
    return {};
  },
  async remoteLeave(msg) {
    await getNsp(msg.nsp).adapter.remoteLeave(msg.sid, msg.room);
    await pubsubBarrier();
    return {};
  },
  async remoteDisconnect(msg) {
    await getNsp(msg.nsp).adapter.remoteDisconnect(msg.sid, !!msg.close);
    await pubsubBarrier();
    return {};
  },
  // {"cmd":"socketsJoin"|"socketsLeave","nsp","to","except","rooms"}
  async socketsJoin(msg) {
    operator(getNsp(msg.nsp), msg).socketsJoin(msg.rooms);
    await pubsubBarrier();
    return {};
  },
  async socketsLeave(msg) {
    operator(getNsp(msg.nsp), msg).socketsLeave(msg.rooms);
    await pubsubBarrier();
    return {};
  },
  // {"cmd":"disconnectSockets","nsp","to","except","close"}
  async disconnectSockets(msg) {
    operator(getNsp(msg.nsp), msg).disconnectSockets(!!msg.close);
    await pubsubBarrier();
    return {};
  },
  // {"cmd":"numSub","nsp"} -> {"count": n} (the adapter's PUBSUB NUMSUB of its request
  // channel: what it waits for; 6.1.1 has no public serverCount)
  async numSub(msg) {
    return { count: await getNsp(msg.nsp).adapter.getNumSub() };
  },
  // Local view: {"cmd":"localRooms","nsp"} -> {"rooms":[{"room":r,"sids":[...]}]}
  async localRooms(msg) {
    const nsp = getNsp(msg.nsp);
    await pubsubBarrier();
    const rooms = [];
    for (const [room, sids] of nsp.adapter.rooms) rooms.push({ room, sids: [...sids] });
    return { rooms };
  },
  // {"cmd":"setData","nsp","sid","data"}
  async setData(msg) {
    const nsp = getNsp(msg.nsp);
    const socket = nsp.sockets.get(msg.sid);
    if (!socket) throw new Error(`no local socket ${msg.sid} in ${nsp.name}`);
    socket.data = fromWire(msg.data);
    return {};
  },
  // {"cmd":"uid","nsp"} -> {"uid": "<adapter uid>"}
  async uid(msg) {
    return { uid: getNsp(msg.nsp).adapter.uid };
  },
  // What this generation offers: {"cmd":"features"} -> {"features": {...}}
  async features() {
    const nsp = io.of("/");
    return {
      features: {
        serverSideEmit: typeof nsp.serverSideEmit === "function",
        customRequest: typeof nsp.adapter.customRequest === "function",
        clientRooms: typeof nsp.adapter.clientRooms === "function",
        serverCount: typeof nsp.adapter.serverCount === "function",
        broadcastWithAck: typeof nsp.adapter.broadcastWithAck === "function",
      },
    };
  },
  // {"cmd":"config","socketAck","socketAckReply"}
  async config(msg) {
    for (const k of ["socketAck", "socketAckReply"]) {
      if (msg[k] !== undefined) cfg[k] = msg[k];
    }
    return { config: cfg };
  },
};

async function shutdown() {
  if (io) {
    await withTimeout(new Promise((r) => io.close(() => r())), 2000, "io.close").catch(
      () => {},
    );
  }
  for (const c of [subClient, pubClient]) {
    if (c && c.connected) await call(c, "quit").catch(() => {});
  }
}

// The installed version of a package (read from its folder: socket.io's "exports" hide
// its package.json from require).
function pkgVersion(name) {
  const file = require("path").join(__dirname, "node_modules", name, "package.json");
  return JSON.parse(require("fs").readFileSync(file, "utf8")).version;
}

function tap(channel, msg) {
  let json = null;
  try {
    json = JSON.parse(msg);
  } catch (e) {
    // not JSON: the adapter fails on it too
  }
  out({ wire: { channel, json, firstByte: msg.length ? msg[0] : null } });
}

async function main() {
  lib.runCommandLoop({ gate: started.promise, handlers, shutdown, maxLifetimeMs: MAX_LIFETIME_MS });
  if (PLAIN_ERRORS) {
    process.removeAllListeners("unhandledRejection");
    process.removeAllListeners("uncaughtException");
  }

  pubClient = redis.createClient(REDIS_URL);
  subClient = redis.createClient(REDIS_URL);
  for (const [n, c] of [
    ["pub", pubClient],
    ["sub", subClient],
  ]) {
    c.on("error", (e) => log(`redis ${n} client error:`, e.message));
  }
  await Promise.all(
    [pubClient, subClient].map((c) =>
      withTimeout(new Promise((r) => c.once("ready", r)), 10000, "redis ready"),
    ),
  );
  subClient.on("message", (channel) => {
    const waiter = barrierWaiters.get(channel);
    if (waiter) waiter();
  });
  if (TAP) {
    const prefixes = [`${KEY}-request#`, `${KEY}-response#`];
    subClient.on("messageBuffer", (channel, msg) => {
      channel = channel.toString();
      if (prefixes.some((p) => channel.startsWith(p))) tap(channel, msg);
    });
  }

  httpServer = http.createServer();
  io = new Server(httpServer, {
    adapter: redisAdapter({ pubClient, subClient, key: KEY, requestsTimeout: REQUESTS_TIMEOUT }),
  });
  for (const name of STATIC_NAMES) {
    const nsp = io.of(name);
    nsp.use(middleware).on("connection", onConnection);
    if (!PLAIN_ERRORS) {
      nsp.adapter.on("error", (e) => {
        out({ adapterError: { nsp: name, message: String((e && e.message) || e) } });
      });
    }
  }
  // Every adapter subscribed in its constructor: one barrier confirms them all.
  await subscriptionBarrier();

  await new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(0, "127.0.0.1", resolve);
  });
  const port = httpServer.address().port;
  const uids = {};
  for (const n of STATIC_NAMES) uids[n] = io.of(n).adapter.uid;
  log(`listening on 127.0.0.1:${port}, redis ${REDIS_URL}, key ${KEY} (socket.io-redis 6.1.1)`);
  started.resolve();
  out({
    ready: true,
    name: NAME,
    port,
    key: KEY,
    uids,
    namespaces: STATIC_NAMES,
    libs: {
      "socket.io": pkgVersion("socket.io-4.0"),
      "socket.io-redis": pkgVersion("socket.io-redis"),
      redis: pkgVersion("redis3"),
    },
  });
}

lib.runMain(main, started);
