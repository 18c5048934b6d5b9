"use strict";
// Shared plumbing for the interop scripts (server.js, client.js, emit.js).
//
// Line protocol: one JSON object per line on stdin (commands) and stdout
// (replies and unsolicited reports). Logs go to stderr. See README.md.
//
// Binary values in JSON lines (both directions):
//   {"$bin": "<base64>"}           <-> Node Buffer
// Extra input-only forms:
//   {"$hex": "0102"}               -> Buffer
//   {"$u8": "<base64>"}            -> Uint8Array (own, exactly sized ArrayBuffer)
//   {"$ab": "<base64>"}            -> ArrayBuffer
//   {"$undefined": true}           -> undefined
//   {"$date": <epoch ms>}          -> Date
// Extra output-only forms:
//   {"$bin": "<base64>", "$kind": "ArrayBuffer"|"Uint8Array"|...}  non-Buffer binary
//   {"$undefined": true}           undefined (array element or property value)
//   {"$error": "<message>"}        Error object
//   {"$function": true}            a function (should never be seen)

const readline = require("readline");

let NAME = "node";

function setName(name) {
  NAME = name;
}

function log(...args) {
  const text = args
    .map((a) => (typeof a === "string" ? a : safeStringify(a)))
    .join(" ");
  process.stderr.write(`[${NAME}] ${text}\n`);
}

function safeStringify(v) {
  try {
    return JSON.stringify(toWire(v));
  } catch (e) {
    return String(v);
  }
}

function fromWire(v) {
  if (Array.isArray(v)) return v.map(fromWire);
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1) {
      const k = keys[0];
      if (k === "$bin") return Buffer.from(v.$bin, "base64");
      if (k === "$hex") return Buffer.from(v.$hex, "hex");
      if (k === "$u8") return new Uint8Array(Buffer.from(v.$u8, "base64"));
      if (k === "$ab") {
        const b = Buffer.from(v.$ab, "base64");
        const ab = new ArrayBuffer(b.length);
        new Uint8Array(ab).set(b);
        return ab;
      }
      if (k === "$undefined") return undefined;
      if (k === "$date") return new Date(v.$date);
    }
    const out = {};
    for (const key of keys) out[key] = fromWire(v[key]);
    return out;
  }
  return v;
}

function toWire(v) {
  if (v === undefined) return { $undefined: true };
  if (v === null) return null;
  const t = typeof v;
  if (t === "number") {
    return Number.isFinite(v) ? v : { $number: String(v) };
  }
  if (t === "bigint") return { $bigint: String(v) };
  if (t === "string" || t === "boolean") return v;
  if (t === "function") return { $function: true };
  if (t === "symbol") return { $symbol: String(v) };
  if (Buffer.isBuffer(v)) return { $bin: v.toString("base64") };
  if (v instanceof ArrayBuffer) {
    return { $bin: Buffer.from(v).toString("base64"), $kind: "ArrayBuffer" };
  }
  if (ArrayBuffer.isView(v)) {
    return {
      $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64"),
      $kind: v.constructor.name,
    };
  }
  if (v instanceof Error) return { $error: v.message };
  if (v instanceof Set) return [...v].map(toWire);
  if (v instanceof Map) {
    const out = {};
    for (const [k, val] of v) out[String(k)] = toWire(val);
    return out;
  }
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(toWire);
  const out = {};
  for (const key of Object.keys(v)) out[key] = toWire(v[key]);
  return out;
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// Settles like `promise`, or rejects with "timeout: <what>" after `ms`: every wait of
// the scripts is bounded, so a stuck Redis or peer fails a command instead of hanging it.
function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// The event arguments of an emitting command `{"event": name, "args": [...]}`, decoded
// from their wire form; throws (failing the command) if `event` is missing.
function eventArgs(msg) {
  if (typeof msg.event !== "string") throw new Error("missing 'event'");
  return fromWire(asList(msg.args));
}

// Runs the async `main`; if it fails, rejects `started` (commands waiting for it fail),
// reports `{"fatal": message}` (what the Rust side waits for instead of `ready`) and
// exits with 1.
function runMain(main, started) {
  main().catch((e) => {
    started.reject(e);
    log("fatal:", (e && e.stack) || String(e));
    out({ fatal: String((e && e.message) || e) });
    process.exit(1);
  });
}

// Tiny argv parser: `--name=value` or `--name value`; flags without a value
// become "true". Falls back to environment variables.
function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    if (eq !== -1) {
      args[a.slice(2, eq)] = a.slice(eq + 1);
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
      args[a.slice(2)] = argv[++i];
    } else {
      args[a.slice(2)] = "true";
    }
  }
  return args;
}

function opt(args, name, envName, def) {
  if (args[name] !== undefined) return args[name];
  if (envName && process.env[envName] !== undefined) return process.env[envName];
  return def;
}

function jsonOpt(args, name, envName, def) {
  const raw = opt(args, name, envName, undefined);
  if (raw === undefined) return def;
  try {
    return JSON.parse(raw);
  } catch (e) {
    // not JSON: take it as a plain string
    return raw;
  }
}

function boolOpt(args, name, envName, def) {
  const raw = opt(args, name, envName, undefined);
  if (raw === undefined) return def;
  return raw === "true" || raw === "1" || raw === "yes";
}

function asList(v) {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

// Runs the stdin command loop. `handlers[cmd](msg)` may return a value or a
// promise; its (object) result is merged into `{id, ok: true, ...result}`.
// A thrown error or rejected promise becomes `{id, error: message}`.
// `shutdown()` is awaited (bounded) on `{"cmd":"exit"}` or stdin EOF.
// Commands received before `gate` resolves wait for it (a rejected gate makes
// them fail).
function runCommandLoop({ handlers, defaultCmd, shutdown, maxLifetimeMs, gate }) {
  let exiting = false;
  const exit = (code, why) => {
    if (exiting) return;
    exiting = true;
    log(`exiting (${why})`);
    const hard = setTimeout(() => process.exit(code), 3000);
    hard.unref();
    Promise.resolve()
      .then(() => (shutdown ? shutdown() : undefined))
      .catch((e) => log("shutdown error:", e && e.message))
      .finally(() => process.exit(code));
  };

  if (maxLifetimeMs > 0) {
    const t = setTimeout(() => exit(2, "max lifetime reached"), maxLifetimeMs);
    t.unref();
  }

  process.on("unhandledRejection", (e) => {
    log("unhandled rejection:", (e && e.stack) || String(e));
  });
  process.on("uncaughtException", (e) => {
    log("uncaught exception:", (e && e.stack) || String(e));
    out({ uncaught: String((e && e.message) || e) });
  });
  process.on("SIGTERM", () => exit(0, "SIGTERM"));
  process.on("SIGINT", () => exit(0, "SIGINT"));

  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  rl.on("line", (line) => {
    line = line.trim();
    if (!line) return;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (e) {
      out({ id: null, error: `invalid JSON command: ${e.message}` });
      return;
    }
    if (msg === null || typeof msg !== "object" || Array.isArray(msg)) {
      out({ id: null, error: "command must be a JSON object" });
      return;
    }
    const id = msg.id === undefined ? null : msg.id;
    const cmd = msg.cmd === undefined ? defaultCmd : msg.cmd;
    if (cmd === "exit") {
      out({ id, ok: true });
      exit(0, "exit command");
      return;
    }
    if (cmd === "ping") {
      out({ id, ok: true, pong: true });
      return;
    }
    const handler = handlers[cmd];
    if (!handler) {
      out({ id, error: `unknown cmd ${JSON.stringify(cmd)}` });
      return;
    }
    Promise.resolve(gate)
      .then(() => handler(msg))
      .then(
        (res) => {
          const extra = res && typeof res === "object" ? toWire(res) : {};
          out({ id, ok: true, ...extra });
        },
        (err) => {
          out({ id, error: String((err && err.message) || err) });
        },
      );
  });
  rl.on("close", () => exit(0, "stdin closed"));
}

module.exports = {
  setName,
  log,
  fromWire,
  toWire,
  out,
  withTimeout,
  eventArgs,
  runMain,
  deferred,
  parseArgs,
  opt,
  jsonOpt,
  boolOpt,
  asList,
  runCommandLoop,
};
