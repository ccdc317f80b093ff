#!/usr/bin/env node
// etcd_bench.js - drive etcd through its native gRPC API (the etcd3
// package, @grpc/grpc-js underneath) with the workloads of `cairn bench`,
// and report in the same JSON shape, so bench/compare reads both alike.
//
// Fairness to etcd: reads are etcd's default linearizable reads (what
// cairn's reads promise), writes are plain puts (replicated and fsync'd by
// etcd, as cairn's are). A closed loop of --clients concurrent requests is
// spread over --conns gRPC connections (each its own HTTP/2 channel, not
// grpc-js's shared subchannel), and the connections over the endpoints.
// Two drivers: "grpc" (default) calls etcd's KV service straight through
// @grpc/grpc-js with etcd's own rpc.proto (as shipped in the etcd3
// package), the leanest client Node offers; "etcd3" goes through the etcd3
// package's client, which adds its retry and host-selection policies and
// costs the client about twice the CPU per request. Keys, values and the scrambled zipfian key
// choice are the same as bench/lib/workload.h and zipf.h.
//
// Run (bench/compare does this itself, in a temp dir):
//   d=$(mktemp -d) && cp bench/etcd/package.json bench/etcd/etcd_bench.js "$d"
//   (cd "$d" && npm install --no-audit --no-fund)
//   node "$d/etcd_bench.js" --endpoints 127.0.0.1:2379 --workload A \
//       --records 10000 --clients 50 --duration 10 [--phase load|run|both]
// One JSON object per phase on stdout; exit status 1 if any error.
//
// Node.js runs JavaScript on one thread: the report carries the process's
// CPU time so a saturated client shows (cpu.user_s + cpu.sys_s close to
// elapsed_s means this client, not etcd, was the limit).
'use strict';

const path = require('path');

function parseArgs(argv) {
  const o = {
    endpoints: '127.0.0.1:2379', workload: 'A', phase: 'both',
    records: 100000, valueSize: 100, clients: 50, conns: 0,
    duration: 10, ops: 0, distribution: 'zipfian', seed: 1, driver: 'grpc',
  };
  const names = {
    '--endpoints': 'endpoints', '--workload': 'workload', '--phase': 'phase',
    '--records': 'records', '--value-size': 'valueSize',
    '--clients': 'clients', '--conns': 'conns', '--duration': 'duration',
    '--ops': 'ops', '--distribution': 'distribution', '--seed': 'seed',
    '--driver': 'driver',
  };
  for (let i = 2; i < argv.length; i++) {
    const k = names[argv[i]];
    if (!k || i + 1 >= argv.length) {
      process.stderr.write(`etcd_bench: unknown or incomplete option ${argv[i]}\n`);
      process.exit(2);
    }
    const v = argv[++i];
    o[k] = typeof o[k] === 'number' ? Number(v) : v;
  }
  o.workload = o.workload.toUpperCase();
  // 10 connections: measured here as good as any other count for grpc-js
  // (1, 3, 10, 50 tried), and each costs the client its own HTTP/2 session.
  if (!o.conns) o.conns = Math.min(o.clients, 10);
  return o;
}

// Per-mille proportions of read and update, as in workload.c. E (scans) is
// not offered: etcd's range reads differ enough to need their own study.
const MIXES = { A: [500, 500], B: [950, 50], C: [1000, 0], W: [0, 1000] };

// xorshift64* seeded by one splitmix64 step, as zipf.c.
const M64 = (1n << 64n) - 1n;
function makeRng(seed) {
  let z = (BigInt(seed) + 0x9e3779b97f4a7c15n) & M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  z ^= z >> 31n;
  let s = z || 0x2545f4914f6cdd1dn;
  // BigInt per draw is slow; Math.random is not seedable. Mix: the seeded
  // stream fills a buffer of doubles in bulk, refilled when used up.
  const buf = new Float64Array(4096);
  let pos = buf.length;
  return function next() {
    if (pos === buf.length) {
      for (let i = 0; i < buf.length; i++) {
        s ^= s >> 12n; s = (s ^ (s << 25n)) & M64; s ^= s >> 27n;
        const x = (s * 0x2545f4914f6cdd1dn) & M64;
        buf[i] = Number(x >> 11n) / 9007199254740992;
      }
      pos = 0;
    }
    return buf[pos++];
  };
}

function fnv64(v) {
  let h = 0xcbf29ce484222325n;
  let x = BigInt(v);
  for (let i = 0; i < 8; i++) {
    h ^= x & 0xffn;
    h = (h * 0x100000001b3n) & M64;
    x >>= 8n;
  }
  return h;
}

// Gray et al.'s zipfian, scrambled by FNV-1a 64 as YCSB does (zipf.h).
function makeZipf(n, theta) {
  let zetan = 0;
  for (let i = 1; i <= n; i++) zetan += 1 / Math.pow(i, theta);
  const zeta2 = 1 + Math.pow(0.5, theta);
  const alpha = 1 / (1 - theta);
  const eta = n > 2 ? (1 - Math.pow(2 / n, 1 - theta)) / (1 - zeta2 / zetan) : 0;
  const cache = new Map();
  return function next(u) {
    const uz = u * zetan;
    let rank;
    if (uz < 1 || n === 1) rank = 0;
    else if (uz < zeta2 || n === 2) rank = 1;
    else rank = Math.min(n - 1, Math.floor(n * Math.pow(eta * u - eta + 1, alpha)));
    let item = cache.get(rank);
    if (item === undefined) {
      item = Number(fnv64(rank) % BigInt(n));
      if (cache.size < 1000000) cache.set(rank, item);
    }
    return item;
  };
}

function keyOf(i) {
  return 'user' + String(i % 1e12).padStart(12, '0');
}

// Exact percentiles by bench/lib/hist.h's rank rule: ceil(p/100 * count).
function summary(lat, errors, secs) {
  const n = lat.length;
  const a = Float64Array.from(lat).sort();
  const at = (p) => (n ? a[Math.max(1, Math.ceil(p / 100 * n - 1e-9)) - 1] : 0);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i];
  const r = (x) => Math.round(x);
  return {
    count: n, ops_per_s: secs > 0 ? n / secs : 0, errors,
    mean_us: n ? sum / n : 0, p50_us: r(at(50)), p95_us: r(at(95)),
    p99_us: r(at(99)), p999_us: r(at(99.9)), max_us: r(n ? a[n - 1] : 0),
  };
}

// Each driver: get(i, key) -> Promise<found?>, put(i, key, value), close().
// `i` is the worker number; it picks the connection.
function etcd3Driver(o) {
  const { Etcd3 } = require('etcd3');
  const hosts = o.endpoints.split(',');
  const cs = [];
  for (let i = 0; i < o.conns; i++) {
    cs.push(new Etcd3({
      hosts,
      grpcOptions: { 'grpc.use_local_subchannel_pool': 1 },
    }));
  }
  return {
    get: async (i, key) => (await cs[i % cs.length].get(key).string()) !== null,
    put: (i, key, value) => cs[i % cs.length].put(key).value(value),
    close: () => cs.forEach((c) => c.close()),
  };
}

function grpcDriver(o) {
  const grpc = require('@grpc/grpc-js');
  const loader = require('@grpc/proto-loader');
  const proto = path.join(path.dirname(require.resolve('etcd3/package.json')),
                          'proto', 'rpc.proto');
  const def = loader.loadSync(proto, { keepCase: true, longs: String,
                                       enums: String, defaults: true,
                                       oneofs: true });
  const KV = grpc.loadPackageDefinition(def).etcdserverpb.KV;
  const hosts = o.endpoints.split(',');
  const cs = [];
  for (let i = 0; i < o.conns; i++) {
    cs.push(new KV(hosts[i % hosts.length], grpc.credentials.createInsecure(),
                   { 'grpc.use_local_subchannel_pool': 1 }));
  }
  const call = (c, m, req) => new Promise((resolve, reject) => {
    c[m](req, (e, r) => (e ? reject(e) : resolve(r)));
  });
  return {
    get: async (i, key) => {
      const r = await call(cs[i % cs.length], 'Range', { key: Buffer.from(key) });
      return r.kvs.length > 0;
    },
    put: (i, key, value) => call(cs[i % cs.length], 'Put',
                                 { key: Buffer.from(key), value }),
    close: () => cs.forEach((c) => c.close()),
  };
}

async function runPhase(o, phase, drv, value) {
  const mix = MIXES[o.workload];
  const rng = makeRng(o.seed + (phase === 'load' ? 0 : 1));
  const zipf = o.distribution === 'zipfian' ? makeZipf(o.records, 0.99) : null;
  const pick = () => (zipf ? zipf(rng()) : Math.floor(rng() * o.records));
  const lat = { READ: [], UPDATE: [], INSERT: [] };
  const errs = { READ: 0, UPDATE: 0, INSERT: 0 };
  const words = {};
  let misses = 0;
  let issued = 0;
  const target = phase === 'load' ? o.records : o.ops;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(o.duration * 1e9));
  const more = () => (target ? issued < target
                             : process.hrtime.bigint() < deadline);

  async function worker(w) {
    while (more()) {
      let op, key;
      if (phase === 'load') { op = 'INSERT'; key = keyOf(issued); }
      else {
        op = rng() * 1000 < mix[0] ? 'READ' : 'UPDATE';
        key = keyOf(pick());
      }
      issued++;
      const s = process.hrtime.bigint();
      try {
        if (op === 'READ') {
          if (!(await drv.get(w, key))) misses++;
        } else {
          await drv.put(w, key, value);
        }
        lat[op].push(Number(process.hrtime.bigint() - s) / 1000);
      } catch (e) {
        errs[op]++;
        const word = String((e && (e.code !== undefined ? 'GRPC_' + e.code : e.name)) || 'ERR').split(' ')[0];
        words[word] = (words[word] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: o.clients }, (_, w) => worker(w)));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const byOp = {};
  let all = [];
  let nerr = 0;
  for (const op of Object.keys(lat)) {
    if (lat[op].length || errs[op]) byOp[op] = summary(lat[op], errs[op], secs);
    all = all.concat(lat[op]);
    nerr += errs[op];
  }
  return {
    tool: 'etcd-' + o.driver + '-node', target: o.endpoints, phase,
    workload: phase === 'load' ? 'load' : o.workload,
    distribution: o.distribution, records: o.records,
    value_size: o.valueSize, clients: o.clients, pipeline: 1,
    conns: o.conns, elapsed_s: secs, ops: all.length + nerr,
    ops_per_s: (all.length + nerr) / secs, errors: nerr, misses,
    aborted: false, error_words: words,
    cpu: { user_s: cpu.user / 1e6, sys_s: cpu.system / 1e6 },
    by_op: byOp, TOTAL: summary(all, nerr, secs),
  };
}

async function main() {
  const o = parseArgs(process.argv);
  if (!MIXES[o.workload]) {
    process.stderr.write(`etcd_bench: workload ${o.workload} not offered (A, B, C, W)\n`);
    process.exit(2);
  }
  let value = '';
  const vr = makeRng(o.seed);
  for (let i = 0; i < o.valueSize; i++) value += String.fromCharCode(97 + Math.floor(vr() * 26));
  if (o.driver !== 'grpc' && o.driver !== 'etcd3') {
    process.stderr.write(`etcd_bench: --driver is grpc or etcd3\n`);
    process.exit(2);
  }
  const drv = o.driver === 'grpc' ? grpcDriver(o) : etcd3Driver(o);
  let status = 0;
  try {
    const phases = o.phase === 'both' ? ['load', 'run'] : [o.phase];
    for (const p of phases) {
      const res = await runPhase(o, p, drv, value);
      process.stdout.write(JSON.stringify(res) + '\n');
      if (res.errors) status = 1;
    }
  } finally {
    drv.close();
  }
  process.exitCode = status;
}

main().catch((e) => {
  process.stderr.write(`etcd_bench: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
