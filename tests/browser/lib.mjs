// Harness of the browser tests: the test profile's services (URLs from
// compose/services.sh env --profile test), place-api / place-worker started
// and stopped by pid, Redis through redis-cli, PostgreSQL through psql, plain
// HTTP through fetch. Node's standard library only (plus playwright-core in
// run.mjs).
import {spawn, execFileSync} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.resolve(ROOT, process.env.PLACE_BIN || 'bin');
export const OUT = path.join(ROOT, 'tests', 'out', 'browser');
// where the binaries run (config.ini, sql/): the checkout, unless
// PLACE_CWD names another (a build of another revision)
const CWD = path.resolve(ROOT, process.env.PLACE_CWD || '.');

export function serviceEnv() {
  const out = execFileSync(path.join(ROOT, 'compose', 'services.sh'), ['env', '--profile', 'test'],
    {cwd: ROOT, encoding: 'utf8'});
  const env = {};
  for (let line of out.split('\n')) {
    line = line.trim();
    if (!line.startsWith('export ')) continue;
    const [k, ...v] = line.slice(7).split('=');
    env[k] = v.join('=').replace(/^['"]|['"]$/g, '');
  }
  return env;
}

export const ENV = serviceEnv();
const REDIS_PORT = ENV.PLACE_REDIS_URL.replace(/\/\d*$/, '').split(':').pop();

export function redis(...args) {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', REDIS_PORT, '--raw', ...args.map(String)],
    {encoding: 'utf8'}).replace(/\n$/, '');
}

export function sql(query) {
  return execFileSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', ENV.PLACE_POSTGRES_MIGRATE_URL],
    {input: query, encoding: 'utf8'}).trim();
}

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

export async function waitFor(cond, {timeout = 10000, what = 'condition', every = 50} = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await cond();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(every);
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what}` +
    (last instanceof Error ? ` (last error: ${last.message})` : last !== undefined ? ` (last: ${JSON.stringify(last)})` : ''));
}

export function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

export function assertEq(a, b, msg) {
  if (JSON.stringify(a) !== JSON.stringify(b))
    throw new Error(`assertion failed: ${msg}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`);
}

// a port below the ephemeral range that nobody listens on
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const ok = await new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port in 20000..29999');
}

// Empty Redis and PostgreSQL of the test profile and migrate afresh.
export function resetState() {
  redis('FLUSHALL');
  sql('SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public; GRANT ALL ON SCHEMA public TO public;');
  execFileSync(path.join(BIN, 'place-api'), ['migrate'], {cwd: CWD, env: {...process.env, ...ENV},
    stdio: ['ignore', 'ignore', 'pipe']});
}

const children = new Set();
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch (e) { /* gone */ } } });

function startProc(bin, args, env, logPath) {
  fs.mkdirSync(path.dirname(logPath), {recursive: true});
  const log = fs.openSync(logPath, 'a');
  const p = spawn(bin, args, {cwd: CWD, env, stdio: ['ignore', log, log]});
  fs.closeSync(log);
  children.add(p);
  p.exited = new Promise((resolve) => p.once('exit', (code, sig) => { children.delete(p); resolve({code, sig}); }));
  return p;
}

async function stopProc(p, sig = 'SIGTERM', timeout = 15000) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  p.kill(sig);
  const t = setTimeout(() => { try { p.kill('SIGKILL'); } catch (e) { /* gone */ } }, timeout);
  await p.exited;
  clearTimeout(t);
}

// One place-api process; overrides are PLACE_<SECTION>_<KEY> settings.
export class Api {
  constructor(name, overrides = {}, port = 0) {
    this.name = name;
    this.port = port;
    this.overrides = overrides;
    this.proc = null;
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  async start() {
    if (!this.port) this.port = await freePort();
    const env = {...process.env, ...ENV,
      PLACE_HTTP_PORT: String(this.port), PLACE_INSTANCE_NAME: this.name, PLACE_LOG_LEVEL: 'info',
      PLACE_SINK_BLOCK_MS: '50', PLACE_HTTP_STATIC_DIR: path.join(ROOT, 'web'),
      PLACE_WS_ALLOWED_ORIGINS: `http://127.0.0.1:${this.port}`,
      // every page of the tests comes from 127.0.0.1: lift the per-IP limits
      PLACE_LIMITS_AUTH_PER_MIN: '100000', PLACE_LIMITS_CANVAS_PER_MIN: '100000',
      PLACE_LIMITS_API_PER_MIN: '100000'};
    for (const [k, v] of Object.entries(this.overrides)) env['PLACE_' + k.toUpperCase()] = String(v);
    this.proc = startProc(path.join(BIN, 'place-api'), [], env, path.join(OUT, `${this.name}.log`));
    await this.waitReady();
    return this;
  }

  async waitReady(timeout = 20000) {
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`${this.name} exited with ${this.proc.exitCode}; see ${OUT}/${this.name}.log`);
      try {
        const r = await fetch(this.url + '/health');
        if (r.status === 200) return;
      } catch (e) { /* not yet */ }
      await sleep(50);
    }
    throw new Error(`${this.name} not up after ${timeout} ms`);
  }

  async stop(sig = 'SIGTERM') { await stopProc(this.proc, sig); this.proc = null; }

  // plain JSON request; returns {status, headers, data}
  async json(method, p, body, {token, headers} = {}) {
    const h = {...(headers || {})};
    if (token) h.Authorization = 'Bearer ' + token;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const r = await fetch(this.url + p, {method, headers: h, body: body !== undefined ? JSON.stringify(body) : undefined});
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
    return {status: r.status, headers: r.headers, data};
  }

  async guest() {
    const r = await this.json('POST', '/api/v1/auth/guest');
    assert(r.status === 201, 'guest: ' + r.status + ' ' + JSON.stringify(r.data));
    return r.data; // {userId, username, token, ...}
  }

  async canvas() {
    const r = await fetch(this.url + '/api/v1/canvas');
    assert(r.status === 200, 'canvas ' + r.status);
    return {bytes: new Uint8Array(await r.arrayBuffer()), seq: Number(r.headers.get('X-Canvas-Seq'))};
  }

  async place(token, x, y, color) {
    return this.json('POST', '/api/v1/pixel', {x, y, color}, {token});
  }

  // does the api answer this route (anything but 404 NOT_FOUND)?
  async has(method, p) {
    const r = await this.json(method, p, method === 'GET' ? undefined : {});
    return r.status !== 404;
  }
}

// One place-worker process.
export class Worker {
  constructor(name = 'worker') { this.name = name; this.proc = null; }

  async start() {
    const env = {...process.env, ...ENV, PLACE_INSTANCE_NAME: this.name, PLACE_LOG_LEVEL: 'info'};
    this.proc = startProc(path.join(BIN, 'place-worker'), [], env, path.join(OUT, `${this.name}.log`));
    await sleep(300);
    if (this.proc.exitCode !== null) throw new Error(`${this.name} exited with ${this.proc.exitCode}`);
    return this;
  }

  async ensure() { if (!this.proc) await this.start(); return this; }

  enqueue(...args) {
    return execFileSync(path.join(BIN, 'place-worker'), ['enqueue', ...args],
      {cwd: CWD, env: {...process.env, ...ENV}, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']});
  }

  async stop() { await stopProc(this.proc); this.proc = null; }
}

// An admin session straight in Redis (no admin account needed): returns
// the session id, to be set as the place_session cookie.
export function adminSession(name = 'admin') {
  const hex = [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, '0')).join('');
  const uid = crypto.randomUUID();
  redis('HSET', 'session:' + hex, 'uid', uid, 'name', name, 'guest', '0', 'admin', '1');
  redis('EXPIRE', 'session:' + hex, '86400');
  return {token: hex, userId: uid};
}

export async function sha256hex(bytes) {
  const h = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(h)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
