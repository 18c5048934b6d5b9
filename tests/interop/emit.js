"use strict";
// Redis emitters driven by JSON lines on stdin: @socket.io/redis-emitter 5.1.0
// (redis@4 client) and the legacy socket.io-emitter 3.2.0 (its own redis
// 2.6.3 client and notepack.io 2.x). See README.md for the protocol.

const { Emitter } = require("@socket.io/redis-emitter");
const { createClient } = require("redis");
const legacyEmitter = require("socket.io-emitter");
const lib = require("./lib");
const { log, out, asList, withTimeout, eventArgs } = lib;

const args = lib.parseArgs(process.argv.slice(2));
const started = lib.deferred(); // resolved when ready
const NAME = lib.opt(args, "name", "NAME", "emitter");
lib.setName(NAME);
const REDIS_URL = lib.opt(args, "redis", "REDIS_URL", "redis://127.0.0.1:6379");
const KEY = lib.opt(args, "key", "KEY", "socket.io");
const MAX_LIFETIME_MS = Number(lib.opt(args, "max-lifetime-ms", "MAX_LIFETIME_MS", "600000"));

let redisClient; // redis@4, for @socket.io/redis-emitter
let emitter;
let legacy; // socket.io-emitter 3.2.0 (owns a redis 2.6.3 client)

// Commands on one connection are answered in order, so once PING answers,
// every PUBLISH sent before it has been executed by Redis.
function legacyPing() {
  return withTimeout(
    new Promise((resolve, reject) =>
      legacy.redis.ping((err, res) => (err ? reject(err) : resolve(res))),
    ),
    10000,
    "legacy redis ping",
  );
}

function modernPing() {
  return withTimeout(redisClient.ping(), 10000, "redis ping");
}

function libOf(msg) {
  const l = msg.lib === undefined ? "redis-emitter" : msg.lib;
  if (l !== "redis-emitter" && l !== "socket.io-emitter") {
    throw new Error(`unknown lib ${JSON.stringify(l)}`);
  }
  return l;
}

function nspOf(msg) {
  return msg.nsp === undefined ? "/" : String(msg.nsp);
}

// @socket.io/redis-emitter operator with to/except/volatile/compress
function modernOperator(msg) {
  let op = emitter.of(nspOf(msg));
  const to = asList(msg.to);
  const except = asList(msg.except);
  if (to.length) op = op.to(to);
  if (except.length) op = op.except(except);
  if (msg.volatile) op = op.volatile;
  if (msg.compress !== undefined) op = op.compress(!!msg.compress);
  return op;
}

function onlyModern(msg, what) {
  if (libOf(msg) !== "redis-emitter") {
    throw new Error(`${what} is not supported by socket.io-emitter 3.2.0`);
  }
}

const handlers = {
  // {"cmd":"emit"(default),"lib","nsp","to","except","volatile","compress",
  //  "json","broadcast","event","args"}
  async emit(msg) {
    const eargs = eventArgs(msg);
    if (libOf(msg) === "redis-emitter") {
      modernOperator(msg).emit(msg.event, ...eargs);
      await modernPing();
      return {};
    }
    if (asList(msg.except).length) {
      throw new Error("except is not supported by socket.io-emitter 3.2.0");
    }
    if (msg.compress !== undefined) {
      throw new Error("compress is not supported by socket.io-emitter 3.2.0");
    }
    let e = legacy.of(nspOf(msg));
    for (const room of asList(msg.to)) e = e.to(room);
    if (msg.volatile) e = e.volatile;
    if (msg.json) e = e.json;
    if (msg.broadcast) e = e.broadcast;
    e.emit(msg.event, ...eargs);
    await legacyPing();
    return {};
  },
  // {"cmd":"socketsJoin","nsp","to","except","rooms"}
  async socketsJoin(msg) {
    onlyModern(msg, "socketsJoin");
    modernOperator(msg).socketsJoin(msg.rooms);
    await modernPing();
    return {};
  },
  async socketsLeave(msg) {
    onlyModern(msg, "socketsLeave");
    modernOperator(msg).socketsLeave(msg.rooms);
    await modernPing();
    return {};
  },
  // {"cmd":"disconnectSockets","nsp","to","except","close"}
  async disconnectSockets(msg) {
    onlyModern(msg, "disconnectSockets");
    modernOperator(msg).disconnectSockets(!!msg.close);
    await modernPing();
    return {};
  },
  // {"cmd":"burst","event","count","payload"}: `count` plain emit() calls in one
  // synchronous loop (@socket.io/redis-emitter's emit is fire-and-forget: node-redis
  // queues the PUBLISH), each with args [i, payload]; then a PING, answered once Redis
  // executed every PUBLISH before it. Reports the loop's time (first to last emit) and
  // the time until the PING answered, in ms.
  async burst(msg) {
    onlyModern(msg, "burst");
    const n = Number(msg.count);
    const payload = String(msg.payload || "");
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      emitter.emit(msg.event, i, payload);
    }
    const t1 = performance.now();
    await modernPing();
    const t2 = performance.now();
    return { loop_ms: t1 - t0, executed_ms: t2 - t0 };
  },
  // {"cmd":"serverSideEmit","nsp","event","args"}
  async serverSideEmit(msg) {
    onlyModern(msg, "serverSideEmit");
    emitter.of(nspOf(msg)).serverSideEmit(msg.event, ...eventArgs(msg));
    await modernPing();
    return {};
  },
};

async function shutdown() {
  if (redisClient && redisClient.isOpen) {
    await withTimeout(redisClient.quit(), 1000, "quit").catch(() => {});
  }
  if (legacy && legacy.redis) {
    try {
      legacy.redis.quit();
    } catch (e) {
      /* ignore */
    }
  }
}

async function main() {
  lib.runCommandLoop({ gate: started.promise, handlers, defaultCmd: "emit", shutdown, maxLifetimeMs: MAX_LIFETIME_MS });

  redisClient = createClient({ url: REDIS_URL });
  redisClient.on("error", (e) => log("redis@4 client error:", e.message));
  await redisClient.connect();
  emitter = new Emitter(redisClient, { key: KEY });

  const u = new URL(REDIS_URL);
  legacy = legacyEmitter({
    host: u.hostname || "127.0.0.1",
    port: Number(u.port || 6379),
    key: KEY,
  });
  legacy.redis.on("error", (e) => log("redis 2.x client error:", e.message));
  await legacyPing();
  await modernPing();

  log(`ready, redis ${REDIS_URL}, key ${KEY}`);
  started.resolve();
  out({
    ready: true,
    key: KEY,
    libs: { "redis-emitter": "5.1.0", "socket.io-emitter": "3.2.0" },
  });
}

lib.runMain(main, started);
