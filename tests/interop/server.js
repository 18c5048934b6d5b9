"use strict";
// A Node socket.io 4.8.4 server using @socket.io/redis-adapter 8.3.0 (redis@4
// clients), driven by JSON lines on stdin. See README.md for the protocol.

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { createClient, createCluster } = require("redis");
const lib = require("./lib");
const { log, out, fromWire, toWire, asList, withTimeout, eventArgs } = lib;

const args = lib.parseArgs(process.argv.slice(2));
const started = lib.deferred(); // resolved when ready
const NAME = lib.opt(args, "name", "NAME", "node-server");
lib.setName(NAME);
const REDIS_URL = lib.opt(args, "redis", "REDIS_URL", "redis://127.0.0.1:6379");
const KEY = lib.opt(args, "key", "KEY", "socket.io");
const REQUESTS_TIMEOUT = Number(
  lib.opt(args, "requests-timeout", "REQUESTS_TIMEOUT", "5000"),
);
const SPECIFIC_RESPONSE = lib.boolOpt(
  args,
  "specific-response",
  "SPECIFIC_RESPONSE",
  false,
);
const EXTRA_NAMESPACES = String(lib.opt(args, "namespaces", "NAMESPACES", ""))
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);
const DYNAMIC_NSP = new RegExp(
  lib.opt(args, "dynamic", "DYNAMIC_NSP", "^\\/dyn-\\w+$"),
);
// --cluster: --redis is a comma-separated list of seed URLs of a Redis Cluster
// (node-redis createCluster); pub/sub barriers then only order what this server
// published itself.
const CLUSTER = lib.boolOpt(args, "cluster", "CLUSTER", false);
// --sharded <static|dynamic|dynamic-private>: createShardedAdapter instead (KEY is its
// channelPrefix); empty: the classic createAdapter.
const SHARDED = String(lib.opt(args, "sharded", "SHARDED", ""));
// --sentinel <master name>: --redis is a comma-separated list of sentinel URLs, and
// the clients are ioredis' (5.11.1) Sentinel clients, the maintainers' answer for
// Sentinel (node-redis' createSentinel breaks the adapter, socket.io-redis-adapter
// #571): the master is asked of the sentinels on every reconnect, and
// failoverDetector reconnects on +switch-master.
const SENTINEL = String(lib.opt(args, "sentinel", "SENTINEL", ""));
// --streams <streamName>: @socket.io/redis-streams-adapter 0.3.1 (KEY is its
// channelPrefix) instead of the pub/sub adapters; --csr turns socket.io's connection
// state recovery on (what Node users of the streams adapter run it for).
const STREAMS = String(lib.opt(args, "streams", "STREAMS", ""));
const CSR = lib.boolOpt(args, "csr", "CSR", false);
// --streams-sharded: the streams adapter's pub/sub part over sharded pub/sub
// (useShardedPubSub).
const STREAMS_SHARDED = lib.boolOpt(args, "streams-sharded", "STREAMS_SHARDED", false);
const MAX_LIFETIME_MS = Number(
  lib.opt(args, "max-lifetime-ms", "MAX_LIFETIME_MS", "600000"),
);

// Replies used to answer acknowledgements. Both are single values (only the
// first ack argument crosses the cluster anyway). Changed with {"cmd":"config"}.
const cfg = {
  // serverSideEmit(..., ack) received from another server
  serverSideAck: true,
  serverSideAckReply: lib.jsonOpt(args, "ack-reply", "ACK_REPLY", NAME),
  // client emit with ack to this server (other than join/leave)
  socketAck: true,
  socketAckReply: lib.jsonOpt(args, "socket-ack-reply", "SOCKET_ACK_REPLY", NAME),
  // false: serverSideEmit events are still answered but not reported on stdout (the
  // request benchmark sends thousands; a stdout line each would be part of the timing)
  reportServerSide: true,
};

let io;
let httpServer;
let pubClient;
let subClient;
let barrierCounter = 0;
const nspReady = new Map(); // namespace name -> Promise (its subscriptions are active)

// Resolves once every (P)SUBSCRIBE queued before it on the subscriber
// connection has been confirmed by Redis (replies come back in order).
async function subscriptionBarrier() {
  const ch = `__interop_barrier__#${process.pid}#${barrierCounter++}`;
  await withTimeout(subClient.subscribe(ch, () => {}), 10000, "subscribe barrier");
  subClient.unsubscribe(ch).catch(() => {});
}

// Resolves once everything published before it on the publisher connection
// has been delivered by Redis to this server's own subscriber connection (and
// handled synchronously by the adapter).
async function pubsubBarrier() {
  const ch = `__interop_barrier__#${process.pid}#${barrierCounter++}`;
  let resolve;
  const got = new Promise((r) => (resolve = r));
  await withTimeout(subClient.subscribe(ch, () => resolve()), 10000, "subscribe");
  await pubClient.publish(ch, "x");
  await withTimeout(got, 10000, "pubsub barrier");
  subClient.unsubscribe(ch).catch(() => {});
}

function patchServerSideEmit(nsp) {
  if (nsp.__interopPatched) return;
  nsp.__interopPatched = true;
  // Catch-all for serverSideEmit events: reported as {"serverSideEvent": ...}.
  nsp._onServerSideEmit = (data) => {
    const list = [...data];
    let ack = null;
    if (typeof list[list.length - 1] === "function") ack = list.pop();
    const [event, ...rest] = list;
    if (cfg.reportServerSide) {
      out({
        serverSideEvent: {
          nsp: nsp.name,
          event,
          args: toWire(rest),
          ack: !!ack,
        },
      });
    }
    if (ack && cfg.serverSideAck) ack(fromWire(cfg.serverSideAckReply));
  };
}

function prepareNamespace(nsp) {
  if (!nspReady.has(nsp.name)) {
    patchServerSideEmit(nsp);
    const p = subscriptionBarrier();
    p.catch((e) => log(`namespace ${nsp.name} not ready:`, e.message));
    nspReady.set(nsp.name, p);
  }
  return nspReady.get(nsp.name);
}

async function getNsp(name) {
  name = name === undefined || name === null ? "/" : String(name);
  if (name[0] !== "/") name = "/" + name;
  const nsp = io.of(name);
  await prepareNamespace(nsp);
  return nsp;
}

function middleware(socket, next) {
  const p = nspReady.get(socket.nsp.name) || Promise.resolve();
  p.then(
    () => {
      const auth = socket.handshake.auth || {};
      if (auth.data !== undefined) socket.data = fromWire(auth.data);
      next();
    },
    (e) => next(e),
  );
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

// Applies to/except/volatile/local/compress/timeout to a namespace.
function operator(target, msg) {
  let op = target;
  const to = asList(msg.to);
  const except = asList(msg.except);
  if (to.length) op = op.to(to);
  if (except.length) op = op.except(except);
  if (msg.volatile) op = op.volatile;
  if (msg.local) op = op.local;
  if (msg.compress !== undefined) op = op.compress(!!msg.compress);
  if (msg.timeout !== undefined && msg.timeout !== null) op = op.timeout(msg.timeout);
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

function ackEmit(target, timeout, event, eargs) {
  return new Promise((resolve) => {
    const t = timeout === undefined || timeout === null ? target : target.timeout(timeout);
    t.emit(event, ...eargs, (err, ...responses) => {
      resolve({ err: err ? err.message : null, responses });
    });
  });
}

const handlers = {
  // {"cmd":"emit","nsp","to","except","volatile","local","compress","event","args"}
  async emit(msg) {
    const nsp = await getNsp(msg.nsp);
    const eargs = eventArgs(msg);
    operator(nsp, msg).emit(msg.event, ...eargs);
    await pubsubBarrier();
    return {};
  },
  // {"cmd":"emitWithAck","nsp","to","except","timeout","event","args"}
  // -> {"err": null|"operation has timed out", "responses": [...]}
  async emitWithAck(msg) {
    const nsp = await getNsp(msg.nsp);
    const eargs = eventArgs(msg);
    const timeout = msg.timeout === undefined ? 5000 : msg.timeout;
    const op = operator(nsp, { ...msg, timeout });
    return new Promise((resolve) => {
      op.emit(msg.event, ...eargs, (err, responses) => {
        resolve({ err: err ? err.message : null, responses: responses || [] });
      });
    });
  },
  // socket.broadcast.emit from a local socket
  // {"cmd":"broadcast","nsp","sid","to","except","volatile","event","args"}
  async broadcast(msg) {
    const nsp = await getNsp(msg.nsp);
    const socket = nsp.sockets.get(msg.sid);
    if (!socket) throw new Error(`no local socket ${msg.sid} in ${nsp.name}`);
    const eargs = eventArgs(msg);
    operator(socket.broadcast, msg).emit(msg.event, ...eargs);
    await pubsubBarrier();
    return {};
  },
  // Operation on one (local or remote) socket, found with fetchSockets.
  // {"cmd":"remoteSocket","nsp","sid","op":"emit"|"join"|"leave"|"disconnect",
  //  "event","args","ack","timeout","rooms","close"}
  async remoteSocket(msg) {
    const nsp = await getNsp(msg.nsp);
    const s = await findSocket(nsp, msg.sid);
    switch (msg.op) {
      case "emit": {
        const eargs = eventArgs(msg);
        if (msg.ack) return ackEmit(s, msg.timeout, msg.event, eargs);
        s.emit(msg.event, ...eargs);
        break;
      }
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
  // {"cmd":"fetchSockets","nsp","to","except","withHandshake"} -> {"sockets":[{id,rooms,data,local}]}
  async fetchSockets(msg) {
    const nsp = await getNsp(msg.nsp);
    await pubsubBarrier(); // see everything Redis delivered before this command
    const sockets = await operator(nsp, msg).fetchSockets();
    return { sockets: sockets.map((s) => describeSocket(s, !!msg.withHandshake)) };
  },
  // {"cmd":"allRooms","nsp"} -> {"rooms":[...]}
  async allRooms(msg) {
    const nsp = await getNsp(msg.nsp);
    await pubsubBarrier(); // see everything Redis delivered before this command
    const rooms = await nsp.adapter.allRooms();
    return { rooms: [...rooms] };
  },
  // {"cmd":"socketsJoin","nsp","to","except","rooms"}
  async socketsJoin(msg) {
    const nsp = await getNsp(msg.nsp);
    operator(nsp, msg).socketsJoin(msg.rooms);
    await pubsubBarrier();
    return {};
  },
  async socketsLeave(msg) {
    const nsp = await getNsp(msg.nsp);
    operator(nsp, msg).socketsLeave(msg.rooms);
    await pubsubBarrier();
    return {};
  },
  // {"cmd":"disconnectSockets","nsp","to","except","close"}
  async disconnectSockets(msg) {
    const nsp = await getNsp(msg.nsp);
    operator(nsp, msg).disconnectSockets(!!msg.close);
    await pubsubBarrier();
    return {};
  },
  // {"cmd":"serverSideEmit","nsp","event","args","ack":bool}
  // with ack -> {"err": null|"timeout reached: ...", "responses": [...]}
  // (the ack timeout is the adapter's requestsTimeout)
  async serverSideEmit(msg) {
    const nsp = await getNsp(msg.nsp);
    const eargs = eventArgs(msg);
    if (msg.ack) {
      return new Promise((resolve) => {
        nsp.serverSideEmit(msg.event, ...eargs, (err, responses) => {
          resolve({ err: err ? err.message : null, responses: responses || [] });
        });
      });
    }
    nsp.serverSideEmit(msg.event, ...eargs);
    await pubsubBarrier();
    return {};
  },
  // {"cmd":"serverCount","nsp"} -> {"count": n}
  async serverCount(msg) {
    const nsp = await getNsp(msg.nsp);
    return { count: await nsp.adapter.serverCount() };
  },
  // Local view: {"cmd":"localRooms","nsp"} -> {"rooms":[{"room":r,"sids":[...]}]}
  async localRooms(msg) {
    const nsp = await getNsp(msg.nsp);
    await pubsubBarrier(); // see everything Redis delivered before this command
    const rooms = [];
    for (const [room, sids] of nsp.adapter.rooms) rooms.push({ room, sids: [...sids] });
    return { rooms };
  },
  // Local view: {"cmd":"localSockets","nsp"} -> {"sockets":[{id,rooms,data,local}]}
  async localSockets(msg) {
    const nsp = await getNsp(msg.nsp);
    await pubsubBarrier(); // see everything Redis delivered before this command
    return {
      sockets: [...nsp.sockets.values()].map((s) => describeSocket(s, !!msg.withHandshake)),
    };
  },
  // {"cmd":"setData","nsp","sid","data"}
  async setData(msg) {
    const nsp = await getNsp(msg.nsp);
    const socket = nsp.sockets.get(msg.sid);
    if (!socket) throw new Error(`no local socket ${msg.sid} in ${nsp.name}`);
    socket.data = fromWire(msg.data);
    return {};
  },
  // {"cmd":"uid","nsp"} -> {"uid": "<adapter uid>"}
  async uid(msg) {
    const nsp = await getNsp(msg.nsp);
    return { uid: nsp.adapter.uid };
  },
  // {"cmd":"config","serverSideAck":bool,"serverSideAckReply":v,"socketAck":bool,"socketAckReply":v}
  async config(msg) {
    for (const k of [
      "serverSideAck",
      "serverSideAckReply",
      "socketAck",
      "socketAckReply",
      "reportServerSide",
    ]) {
      if (msg[k] !== undefined) cfg[k] = msg[k];
    }
    return { config: cfg };
  },
};

// Benchmark commands (benchRequests, ticksStart, ticksStop): bench.js.
Object.assign(handlers, require("./bench").handlers({ getNsp }));

async function shutdown() {
  if (io) {
    await withTimeout(new Promise((r) => io.close(() => r())), 2000, "io.close").catch(
      () => {},
    );
  }
  for (const c of [subClient, pubClient]) {
    // node-redis: isOpen; ioredis: status.
    if (c && (c.isOpen || c.status === "ready")) {
      await withTimeout(c.quit(), 1000, "redis quit").catch(() => {});
    }
  }
}

async function main() {
  lib.runCommandLoop({ gate: started.promise, handlers, shutdown, maxLifetimeMs: MAX_LIFETIME_MS });

  if (SENTINEL) {
    const Redis = require("ioredis");
    const sentinels = REDIS_URL.split(",").map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port) };
    });
    pubClient = new Redis({ sentinels, name: SENTINEL, failoverDetector: true, lazyConnect: true });
  } else {
    pubClient = CLUSTER
      ? createCluster({ rootNodes: REDIS_URL.split(",").map((url) => ({ url })) })
      : createClient({ url: REDIS_URL });
  }
  subClient = pubClient.duplicate();
  for (const [n, c] of [
    ["pub", pubClient],
    ["sub", subClient],
  ]) {
    c.on("error", (e) => log(`redis ${n} client error:`, e.message));
  }
  await Promise.all([pubClient.connect(), subClient.connect()]);

  httpServer = http.createServer();
  let adapter;
  if (STREAMS) {
    const { createAdapter: createStreamsAdapter } = require("@socket.io/redis-streams-adapter");
    adapter = createStreamsAdapter(pubClient, {
      streamName: STREAMS,
      channelPrefix: KEY,
      useShardedPubSub: STREAMS_SHARDED,
    });
  }
  io = new Server(httpServer, {
    ...(CSR ? { connectionStateRecovery: { maxDisconnectionDuration: 60000 } } : {}),
    adapter: adapter ? adapter : SHARDED
      ? createShardedAdapter(pubClient, subClient, {
          channelPrefix: KEY,
          subscriptionMode: SHARDED,
        })
      : createAdapter(pubClient, subClient, {
          key: KEY,
          requestsTimeout: REQUESTS_TIMEOUT,
          publishOnSpecificResponseChannel: SPECIFIC_RESPONSE,
        }),
  });

  io.sockets.on("new_namespace", (nsp) => prepareNamespace(nsp));
  prepareNamespace(io.of("/"));

  const staticNames = ["/", "/admin", ...EXTRA_NAMESPACES];
  for (const name of staticNames) {
    io.of(name).use(middleware).on("connection", onConnection);
  }
  io.of(DYNAMIC_NSP).use(middleware).on("connection", onConnection);

  await Promise.all(staticNames.map((n) => getNsp(n)));

  await new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(0, "127.0.0.1", resolve);
  });
  const port = httpServer.address().port;
  const uids = {};
  for (const n of staticNames) uids[n] = io.of(n).adapter.uid;
  log(`listening on 127.0.0.1:${port}, redis ${REDIS_URL}, key ${KEY}`);
  started.resolve();
  out({
    ready: true,
    name: NAME,
    port,
    key: KEY,
    uids,
    namespaces: staticNames,
    dynamic: DYNAMIC_NSP.source,
  });
}

lib.runMain(main, started);
