"use strict";
// The differential oracle (tests/differential.rs): puts the same raw Redis message
// through a Node server (socket.io 4.8.4 + @socket.io/redis-adapter 8.3.0) and a Rust
// server, and reports what every socket.io-client socket on each side received.
//
// Node side: the message is handed to the adapter's own subscription listener
// (`adapter.onmessage(pattern, channel, buffer)`, exactly what node-redis calls on a
// pmessage), inside a try/catch. Going through the listener instead of Redis is what lets
// one process observe inputs Node throws on: thrown from inside node-redis' reply parser,
// such an exception leaves that subscriber delivering nothing more (measured; see
// PROTOCOL.md), which would end the run at the first such case.
// Rust side: the message is PUBLISHed on Redis, where the Rust server under test listens.
//
// Both sides get the same sockets: for every namespace, one client per room set in
// --roles (joined with a "join" event acked "ok"). Each case is followed by a marker
// event per namespace; a case's result is what each socket received before its marker.
//
// Commands (JSON lines, see lib.js):
//   {"cmd":"case","channel":"#/#","hex":"93..."}
//     channel: the part after the key prefix; the message bytes may contain the msgpack
//     fixstr of TARGET (see below), replaced on each side by the id of that side's
//     target socket (the socket of role 1 in namespace "/").
//     -> {"threw": null|message, "node": {client: {"events": [...], "broke": [...]}},
//         "rust": {...}}, client = "<nsp> <rooms json>", events = [[event, ...args]]
//         (toWire form), broke = disconnect reasons seen during the case.
//   {"cmd":"request","channel":"-request#/#","hex":"7b..."}
//     the bytes go to both servers' request channels over Redis (TARGET replaced as
//     above, TARGETUID by the server's own uid); then two rounds of an allRooms marker
//     request and a broadcast marker, so that every reply and socket event the request
//     caused is in. -> {"node": {"responses": [...], "sockets": {...}, "state": [...]},
//     "rust": ...}; state: the sockets of "/" with their rooms after the request;
//     responses are [channel suffix, decoded body] with socket ids replaced by
//     "<nsp> <rooms>" names and string arrays sorted.
//
// --sharded=<static|dynamic|dynamic-private>: both sides speak the sharded protocol
// (Node: createShardedAdapter with that subscriptionMode; ours: ClusterOptions::sharded).
// Channels are then `<key>#<nsp>#...` (no `-request`/`-response`), bodies are
// ClusterAdapter messages `{uid, nsp, type, data}`; Node gets each input through its
// `onRawMessage(buffer, channel)` listener, only on a channel its adapter is subscribed
// to (as Redis would route it); ours gets it with SPUBLISH. Requests' replies are read on
// `<key>#<nsp>#<requester uid>#` with SSUBSCRIBE; the markers are requests from the uid
// REQUESTER.

const http = require("http");
const { Server } = require("socket.io");
const { io: connect } = require("socket.io-client");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");
const notepack = require("notepack.io");
const lib = require("./lib");
const { log, out, toWire, withTimeout } = lib;

lib.setName("oracle");
const args = lib.parseArgs(process.argv.slice(2));
const REDIS_URL = lib.opt(args, "redis", "REDIS_URL", undefined);
const NODE_KEY = lib.opt(args, "node-key", undefined, "oracle-node");
const RUST_KEY = lib.opt(args, "rust-key", undefined, undefined);
const RUST_URL = lib.opt(args, "rust-url", undefined, undefined);
const NAMESPACES = String(lib.opt(args, "namespaces", undefined, "/")).split(",");
const ROLES = lib.jsonOpt(args, "roles", undefined, [[]]);
const TARGET = "TARGETSOCKETID";
const PRODUCER = "differential-marker";
const TARGET_UID = "TARGETUID";
const WAIT_MS = 5000;
const SHARDED = String(lib.opt(args, "sharded", undefined, ""));
// The uid of the sharded requests: their replies come back on `<key>#<nsp>#marker#`.
const REQUESTER = "marker";

const started = lib.deferred();
const sides = { node: [], rust: [] }; // [{key, nsp, rooms, socket, events, broke, ...}]
let caseNo = 0;
let pub;

function fixstr(text) {
  const b = Buffer.from(text);
  if (b.length > 31) throw new Error(`fixstr too long: ${text}`);
  return Buffer.concat([Buffer.from([0xa0 | b.length]), b]);
}

// `bytes` with every msgpack fixstr TARGET replaced by the fixstr of `sid`.
function substitute(bytes, sid) {
  return replaceFixstr(bytes, TARGET, sid);
}

function replaceFixstr(bytes, fromText, toText) {
  const from = fixstr(fromText);
  const to = fixstr(toText);
  const parts = [];
  let at = 0;
  for (let i = bytes.indexOf(from); i !== -1; i = bytes.indexOf(from, at)) {
    parts.push(bytes.subarray(at, i), to);
    at = i + from.length;
  }
  parts.push(bytes.subarray(at));
  return Buffer.concat(parts);
}

// Would Redis route `channel` to this Node adapter's subscriber?
function subscribedSharded(adapter, channel) {
  if (channel === adapter.channel || channel === adapter.responseChannel) return true;
  if (SHARDED === "static" || !channel.startsWith(adapter.channel) || !channel.endsWith("#")) {
    return false;
  }
  const room = channel.slice(adapter.channel.length, -1);
  return adapter.rooms.has(room) && adapter.shouldUseASeparateNamespace(room);
}

// Hands `bytes` to the listener of every Node adapter that listens on `channel`;
// returns what a listener threw, if anything.
function deliverToNode(channel, bytes) {
  let threw = null;
  for (const nsp of NAMESPACES) {
    const adapter = io.of(nsp).adapter;
    try {
      if (SHARDED) {
        if (subscribedSharded(adapter, channel)) adapter.onRawMessage(bytes, channel);
      } else if (channel.startsWith(adapter.channel)) {
        adapter.onmessage(null, Buffer.from(channel), bytes);
      }
    } catch (e) {
      threw = String((e && e.message) || e);
    }
  }
  return threw;
}

// Sharded: a channel naming the target socket or the server's uid (a room channel, the
// server's own response channel) names each side's own.
function channelFor(channel, side) {
  if (!SHARDED) return channel;
  return channel.split(TARGET).join(target(side)).split(TARGET_UID).join(uidOf(side));
}

// Publishes to the Rust server the way its protocol does.
function publishToRust(channel, bytes) {
  return SHARDED ? pub.sPublish(Buffer.from(channel), bytes) : pub.publish(Buffer.from(channel), bytes);
}

// Replies seen on each side's `<key>-response#*`, while a request case runs.
const responses = { node: null, rust: null };
let respClient;
let rustUid = null;

function bodyOf(buf) {
  try {
    return buf[0] === 0x7b ? JSON.parse(buf.toString()) : toWire(notepack.decode(buf));
  } catch (e) {
    return { $undecodable: buf.toString("hex") };
  }
}

// Socket ids -> "<nsp> <rooms>" (ids differ between the sides), string arrays sorted,
// fetched sockets reduced to id and rooms (handshakes differ by nature).
function normalize(v, names) {
  if (typeof v === "string") return names.get(v) || v;
  if (Array.isArray(v)) {
    const out = v.map((x) => normalize(x, names));
    return out.every((x) => typeof x === "string") ? out.sort() : out;
  }
  if (v && typeof v === "object") {
    if (typeof v.id === "string" && Array.isArray(v.rooms) && "handshake" in v) {
      return { id: normalize(v.id, names), rooms: normalize(v.rooms, names) };
    }
    const out = {};
    for (const k of Object.keys(v)) out[k] = normalize(v[k], names);
    return out;
  }
  return v;
}

// The fields only our servers add to replies (PROTOCOL.md §4: the responder's id in a
// fetchSockets reply, the answering socket in a client ack): checked, then left out of
// the comparison with Node. A wrong value stays in, so the case shows a difference.
function withoutOurFields(b, side, names) {
  if (SHARDED && b && typeof b === "object" && b.data && typeof b.data === "object") {
    // The responder's uid differs by nature; its data is compared as classic bodies are.
    const data = withoutOurFields(b.data, side, names);
    if (side === "rust" && b.type === 12 && typeof data.sid === "string" && names.has(data.sid)) {
      delete data.sid;
    }
    return { ...b, uid: "<uid>", data };
  }
  if (side !== "rust" || !b || typeof b !== "object" || Array.isArray(b)) return b;
  const out = { ...b };
  if (Array.isArray(out.sockets) && typeof out.serverId === "string" && out.serverId.length === 16) {
    delete out.serverId;
  }
  if (out.type === 9 && typeof out.sid === "string" && names.has(out.sid)) delete out.sid;
  return out;
}

function sidNames(side) {
  const names = new Map();
  for (const c of sides[side]) if (c.socket.id) names.set(c.socket.id, c.key);
  return names;
}

function uidOf(side) {
  return side === "node" ? io.of("/").adapter.uid : rustUid;
}

function substituteAll(bytes, side) {
  let b = replaceFixstr(bytes, TARGET, target(side));
  b = replaceFixstr(b, TARGET_UID, uidOf(side));
  b = substituteText(b, TARGET, target(side));
  return substituteText(b, TARGET_UID, uidOf(side));
}

// JSON bodies: plain text replacement.
function substituteText(bytes, from, to) {
  if (bytes[0] !== 0x7b) return bytes;
  return Buffer.from(bytes.toString().split(from).join(to));
}

// A fetchSockets of every socket: its reply is the side's state (who is in which room).
async function fetchMarker(side, key, id) {
  const got = responses[side];
  const all = { rooms: [], except: [] };
  if (SHARDED) {
    await pub.sPublish(
      `${key}#/#`,
      JSON.stringify({ uid: REQUESTER, nsp: "/", type: 7, data: { opts: all, requestId: id } }),
    );
  } else {
    await pub.publish(
      `${key}-request#/#`,
      JSON.stringify({ type: 5, requestId: id, uid: "marker", opts: all }),
    );
  }
  const body = (b) => (SHARDED ? b && b.data : b);
  return withTimeout(
    new Promise((resolve) => {
      const check = () => {
        const at = got.findIndex(([, b]) => body(b) && body(b).requestId === id);
        if (at !== -1) {
          resolve(body(got.splice(at, 1)[0][1]).sockets);
        } else {
          got.waiters.push(check);
        }
      };
      check();
    }),
    WAIT_MS,
    `fetchSockets marker ${id} on ${side}`,
  );
}

async function runRequest(msg) {
  await started.promise;
  const i = caseNo++;
  const bytes = Buffer.from(msg.hex, "hex");
  for (const c of [...sides.node, ...sides.rust]) {
    await withTimeout(c.ready.promise, WAIT_MS, `client ${c.key} ready`);
  }
  const names = { node: sidNames("node"), rust: sidNames("rust") };
  for (const side of ["node", "rust"]) {
    responses[side] = [];
    responses[side].waiters = [];
  }
  let threw = null;
  if (SHARDED) {
    // Through the listener, as the broadcast cases: an input Node throws on inside
    // node-redis' reply handler would leave its subscriber deaf for the later cases.
    threw = deliverToNode(NODE_KEY + channelFor(msg.channel, "node"), substituteAll(bytes, "node"));
  } else {
    await pub.publish(Buffer.from(NODE_KEY + msg.channel), substituteAll(bytes, "node"));
  }
  await publishToRust(RUST_KEY + channelFor(msg.channel, "rust"), substituteAll(bytes, "rust"));
  for (const round of [0, 1]) {
    await fetchMarker("node", NODE_KEY, `marker-${i}-${round}`);
    await fetchMarker("rust", RUST_KEY, `marker-${i}-${round}`);
  }
  for (const nsp of NAMESPACES) {
    deliverToNode(`${NODE_KEY}#${nsp}#`, marker(nsp, i));
    await publishToRust(`${RUST_KEY}#${nsp}#`, marker(nsp, i));
  }
  const all = [...sides.node, ...sides.rust];
  await withTimeout(Promise.all(all.map((c) => settled(c, i))), WAIT_MS, `markers of ${i}`);
  // The state once sockets cut off by the request are back.
  const state = {};
  state.node = await fetchMarker("node", NODE_KEY, `state-${i}`);
  state.rust = await fetchMarker("rust", RUST_KEY, `state-${i}`);
  const after = { node: sidNames("node"), rust: sidNames("rust") };
  const res = { threw };
  for (const side of ["node", "rust"]) {
    const key = side === "node" ? NODE_KEY : RUST_KEY;
    res[side] = {
      responses: responses[side].map(([ch, b]) => [
        ch.slice(key.length),
        normalize(withoutOurFields(b, side, names[side]), names[side]),
      ]),
      sockets: report(side),
      // Numeric rooms as their text: a Rust socket joins `5` as "5" (deliberate, see
      // PROTOCOL.md), which must not hide the rest of the state.
      state: normalize(
        state[side].map((s) => ({ ...s, rooms: s.rooms.map(String) })),
        after[side],
      ).sort((a, b) => (a.id < b.id ? -1 : 1)),
    };
    for (const r of res[side].responses) {
      r[0] = r[0].split(uidOf(side)).join(TARGET_UID);
    }
    responses[side] = null;
  }
  return res;
}

function marker(nsp, i) {
  if (SHARDED) {
    const packet = { type: 2, data: ["marker", i], nsp };
    const opts = { rooms: [], except: [], flags: {} };
    return Buffer.from(JSON.stringify({ uid: PRODUCER, nsp, type: 3, data: { packet, opts } }));
  }
  return notepack.encode([
    PRODUCER,
    { type: 2, data: ["marker", i], nsp },
    { rooms: [], except: [], flags: {} },
  ]);
}

// One client socket; reconnects (and joins again) after the server or a parse error
// closed it, so that later cases still see every role.
function client(side, url, nsp, rooms) {
  const c = {
    key: `${nsp} ${JSON.stringify(rooms)}`,
    nsp,
    rooms,
    events: [],
    broke: [],
    marker: -1,
    joined: false,
    ready: lib.deferred(),
    waiters: [],
  };
  const socket = connect(url + nsp, {
    transports: ["websocket"],
    forceNew: true,
    reconnectionDelay: 20,
    reconnectionDelayMax: 100,
  });
  c.socket = socket;
  socket.on("connect", () => {
    const joined =
      rooms.length === 0
        ? Promise.resolve("ok")
        : withTimeout(socket.emitWithAck("join", rooms), WAIT_MS, `join ${c.key}`);
    joined.then(
      (reply) => {
        if (reply !== "ok") throw new Error(`join ${c.key}: ${reply}`);
        c.joined = true;
        c.ready.resolve();
        wake(c);
      },
      (e) => c.ready.reject(e),
    );
  });
  socket.on("disconnect", (reason) => {
    c.broke.push(reason);
    c.joined = false;
    c.ready = lib.deferred();
    // A server-side disconnect is not followed by an automatic reconnection.
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", (e) => c.broke.push(`connect_error: ${e.message}`));
  socket.onAny((event, ...rest) => {
    if (event === "marker" && rest.length === 1 && typeof rest[0] === "number") {
      c.marker = rest[0];
      wake(c);
      return;
    }
    c.events.push(toWire([event, ...rest]));
  });
  sides[side].push(c);
  return c;
}

function wake(c) {
  for (const w of c.waiters.splice(0)) w();
}

// Resolves when `c` got marker `i`, or was cut off during the case and is back (the
// marker went to the old connection).
function settled(c, i) {
  return new Promise((resolve) => {
    const check = () => {
      if (c.marker >= i || (c.broke.length > 0 && c.joined)) {
        resolve();
      } else {
        c.waiters.push(check);
      }
    };
    check();
  });
}

// The target socket: role 1 of the first namespace.
function target(side) {
  return sides[side][1].socket.id;
}

function report(side) {
  const res = {};
  for (const c of sides[side]) {
    res[c.key] = { events: c.events, broke: c.broke };
    c.events = [];
    c.broke = [];
  }
  return res;
}

async function runCase(msg) {
  await started.promise;
  const i = caseNo++;
  const bytes = Buffer.from(msg.hex, "hex");
  // Every client must be connected and joined before the case (a client cut off by the
  // previous case reconnects first).
  for (const c of [...sides.node, ...sides.rust]) {
    await withTimeout(c.ready.promise, WAIT_MS, `client ${c.key} ready`);
  }
  // JSON bodies (the sharded protocol's) name the target as text.
  const nodeBytes = substituteText(substitute(bytes, target("node")), TARGET, target("node"));
  const rustBytes = substituteText(substitute(bytes, target("rust")), TARGET, target("rust"));
  const threw = deliverToNode(NODE_KEY + channelFor(msg.channel, "node"), nodeBytes);
  await publishToRust(RUST_KEY + channelFor(msg.channel, "rust"), rustBytes);
  for (const nsp of NAMESPACES) {
    deliverToNode(`${NODE_KEY}#${nsp}#`, marker(nsp, i));
    await publishToRust(`${RUST_KEY}#${nsp}#`, marker(nsp, i));
  }
  const all = [...sides.node, ...sides.rust];
  await withTimeout(
    Promise.all(all.map((c) => settled(c, i))),
    WAIT_MS,
    `markers of case ${i}: missing on ${all
      .filter((c) => c.marker < i)
      .map((c) => c.key)
      .join(", ")}`,
  );
  return { threw, node: report("node"), rust: report("rust") };
}

let io;
let httpServer;
let subClient;

async function main() {
  if (!REDIS_URL || !RUST_KEY || !RUST_URL) throw new Error("need --redis, --rust-key, --rust-url");
  pub = createClient({ url: REDIS_URL });
  subClient = pub.duplicate();
  for (const c of [pub, subClient]) c.on("error", (e) => log("redis error:", e.message));
  await Promise.all([pub.connect(), subClient.connect()]);
  httpServer = http.createServer();
  // A key nobody publishes on: the adapter's own subscriber stays idle; cases reach it
  // through its listener.
  const adapter = SHARDED
    ? createShardedAdapter(pub, subClient, { channelPrefix: NODE_KEY, subscriptionMode: SHARDED })
    : createAdapter(pub, subClient, { key: NODE_KEY });
  io = new Server(httpServer, { adapter });
  for (const nsp of NAMESPACES) {
    io.of(nsp).on("connection", (s) => {
      s.on("join", (rooms, ack) => {
        s.join(rooms);
        ack("ok");
      });
    });
  }
  for (const nsp of NAMESPACES) {
    io.of(nsp).on("ping-ss", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack("pong");
    });
  }
  respClient = pub.duplicate();
  respClient.on("error", (e) => log("redis error:", e.message));
  await respClient.connect();
  for (const [side, key] of [
    ["node", NODE_KEY],
    ["rust", RUST_KEY],
  ]) {
    const listener = (buf, channel) => {
      const got = responses[side];
      if (!got) return;
      got.push([channel.toString(), bodyOf(buf)]);
      for (const w of got.waiters.splice(0)) w();
    };
    if (SHARDED) {
      // Replies to REQUESTER, and to a request without uid (Node answers on `undefined`).
      for (const nsp of NAMESPACES) {
        for (const uid of [REQUESTER, "undefined"]) {
          await respClient.sSubscribe(`${key}#${nsp}#${uid}#`, listener, true);
        }
      }
    } else {
      await respClient.pSubscribe(`${key}-response#*`, listener, true);
    }
  }
  await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
  const nodeUrl = `http://127.0.0.1:${httpServer.address().port}`;
  for (const [side, url] of [
    ["node", nodeUrl],
    ["rust", RUST_URL],
  ]) {
    for (const nsp of NAMESPACES) {
      for (const rooms of ROLES) client(side, url, nsp, rooms);
    }
  }
  for (const c of [...sides.node, ...sides.rust]) {
    await withTimeout(c.ready.promise, 10000, `client ${c.key} connected`);
  }
  started.resolve();
  out({ ready: true, node: nodeUrl, clients: sides.node.length });
}

lib.runCommandLoop({
  handlers: {
    case: runCase,
    request: runRequest,
    rustUid: (msg) => {
      rustUid = String(msg.uid);
      return {};
    },
  },
  gate: started.promise,
  maxLifetimeMs: 600000,
  shutdown: async () => {
    for (const c of [...sides.node, ...sides.rust]) c.socket.close();
    io && io.close();
    await Promise.allSettled([pub, subClient, respClient].map((c) => c && c.quit()));
  },
});
lib.runMain(main, started);
