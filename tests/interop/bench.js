"use strict";
// Benchmark commands of server.js (see README.md "server.js", benchmark commands). The
// timing is taken here, inside Node, so that the figures do not include the JSON-lines
// hop to the Rust process that drives the server.
//
// * benchRequests: N cluster-wide requests back to back, latency percentiles.
// * ticksStart / ticksStop: io.emit at a fixed rate (the fault benchmarks of
//   benches/gaps.rs), recording when each broadcast was emitted and the publish
//   rejections that the adapter leaves unhandled (Node's io.emit returns nothing).

const { performance } = require("perf_hooks");

// Wall-clock milliseconds (fractional): comparable with the Rust side's SystemTime on the
// same machine.
function wallMs() {
  return performance.timeOrigin + performance.now();
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function yieldNow() {
  return new Promise((r) => setImmediate(r));
}

// sorted[min(floor(len * q), len - 1)]: the same rule as the Rust benches.
function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(Math.floor(sorted.length * q), sorted.length - 1)];
}

function handlers({ getNsp }) {
  // One ticker at a time (a server.js process is one server).
  let ticker = null;

  // One request of `op` on `nsp`; resolves to the size of its result.
  function requestOnce(nsp, msg) {
    switch (msg.op) {
      case "fetchSockets": {
        let op = nsp;
        const to = msg.to === undefined || msg.to === null ? [] : [].concat(msg.to);
        if (to.length) op = op.to(to);
        return op.fetchSockets().then((s) => s.length);
      }
      case "allRooms":
        return nsp.adapter.allRooms().then((r) => r.size);
      case "serverSideEmit":
        return new Promise((resolve, reject) => {
          nsp.serverSideEmit(msg.event || "bench", (err, responses) => {
            if (err) reject(err);
            else resolve(responses.length);
          });
        });
      case "serverCount":
        return nsp.adapter.serverCount();
      default:
        return Promise.reject(new Error(`unknown op ${JSON.stringify(msg.op)}`));
    }
  }

  return {
    // {"cmd":"benchRequests","nsp","op":"fetchSockets"|"allRooms"|"serverSideEmit"|
    //  "serverCount","to","event","n":2000,"warmup":50,"expect":<size>}
    // -> {"n","p50","p99","max","mean","totalMs","size"} (ms; size = result length of the
    //    last call: sockets, rooms, responses or servers)
    async benchRequests(msg) {
      const nsp = await getNsp(msg.nsp);
      const n = msg.n === undefined ? 2000 : msg.n;
      const warmup = msg.warmup === undefined ? 50 : msg.warmup;
      let size = null;
      const check = (s) => {
        if (msg.expect !== undefined && msg.expect !== null && s !== msg.expect) {
          throw new Error(`${msg.op}: result size ${s}, expected ${msg.expect}`);
        }
        size = s;
      };
      for (let i = 0; i < warmup; i++) check(await requestOnce(nsp, msg));
      const samples = new Array(n);
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        const s = await requestOnce(nsp, msg);
        samples[i] = performance.now() - t;
        check(s);
      }
      const totalMs = performance.now() - start;
      const sorted = samples.slice().sort((a, b) => a - b);
      return {
        n,
        p50: quantile(sorted, 0.5),
        p99: quantile(sorted, 0.99),
        max: n ? sorted[n - 1] : null,
        mean: n ? samples.reduce((a, b) => a + b, 0) / n : null,
        totalMs,
        size,
      };
    },

    // {"cmd":"ticksStart","nsp","event":"tick","rate":1000} -> {"startedAt": wall ms}
    // Emits `event` with (seq, wall ms at emit) at `rate` per second until ticksStop.
    async ticksStart(msg) {
      if (ticker) throw new Error("ticks already running");
      const nsp = await getNsp(msg.nsp);
      const event = msg.event || "tick";
      const rate = msg.rate || 1000;
      const t = {
        stop: false,
        sentAt: [],
        rejections: 0,
        rejectionMessages: {},
        done: null,
      };
      // The adapter calls pubClient.publish(..) without handling its promise: a failed
      // publish is an unhandled rejection, the only trace it leaves.
      t.onRejection = (e) => {
        t.rejections++;
        const m = String((e && e.message) || e);
        t.rejectionMessages[m] = (t.rejectionMessages[m] || 0) + 1;
      };
      process.on("unhandledRejection", t.onRejection);
      ticker = t;
      const startedAt = wallMs();
      t.done = (async () => {
        const t0 = performance.now();
        for (let i = 0; !t.stop; i++) {
          const wait = t0 + (i * 1000) / rate - performance.now();
          if (wait > 0) await sleep(wait);
          else await yieldNow(); // behind: still let the Redis client write and read
          if (t.stop) break;
          const at = wallMs();
          nsp.emit(event, i, at);
          t.sentAt.push(at);
        }
      })();
      return { startedAt };
    },

    // {"cmd":"ticksStop","settleMs":500} -> {"sentAt":[wall ms per seq],"rejections",
    //  "rejectionMessages":{message: count}}; rejections are counted until settleMs after
    //  the last emit.
    async ticksStop(msg) {
      const t = ticker;
      if (!t) throw new Error("no ticks running");
      t.stop = true;
      await t.done;
      await sleep(msg.settleMs === undefined ? 500 : msg.settleMs);
      process.off("unhandledRejection", t.onRejection);
      ticker = null;
      return {
        sentAt: t.sentAt,
        rejections: t.rejections,
        rejectionMessages: t.rejectionMessages,
      };
    },
  };
}

module.exports = { handlers };
