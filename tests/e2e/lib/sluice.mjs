// Helpers to run the sluice binary from the e2e tests.
//
//   const s = await startSluice({ config: yamlString, env: {...}, args: [...] });
//   s.baseURL, s.url('/v1/models'), s.stdout(), s.stderr()
//   await s.stop();   // SIGTERM, expects exit code 0 and no sanitizer report
//
//   const { code, stdout, stderr } = await runSluice(['--help']);

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const E2E_DIR = path.resolve(here, '..');

export const SLUICE_BIN = process.env.SLUICE_BIN
  ? path.resolve(E2E_DIR, process.env.SLUICE_BIN)
  : path.resolve(E2E_DIR, '../../build/sluice');

export const MASTER_KEY = 'sk-master-1234';

const SANITIZER_PATTERNS = [/AddressSanitizer/, /LeakSanitizer/, /UndefinedBehaviorSanitizer/, /runtime error:/, /ThreadSanitizer/];

// Environment variables that would make the tests depend on the machine they
// run on. They are removed from the inherited environment; a test that needs
// one passes it explicitly via `env`.
const SCRUBBED_ENV = [
  'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'NO_PROXY',
  'http_proxy', 'https_proxy', 'all_proxy', 'no_proxy',
  'LITELLM_MASTER_KEY', 'LITELLM_SALT_KEY', 'LITELLM_LOG', 'LITELLM_CONFIG', 'CONFIG_FILE_PATH',
  'OPENAI_API_KEY', 'OPENAI_API_BASE', 'OPENAI_BASE_URL', 'ANTHROPIC_API_KEY', 'PORT', 'HOST',
];

export function childEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of SCRUBBED_ENV) delete env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined || v === null) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

export function findSanitizerReport(text) {
  if (!text) return null;
  for (const re of SANITIZER_PATTERNS) {
    const m = re.exec(text);
    if (m) {
      // Return the report from a little before the match to keep context.
      const start = Math.max(0, text.lastIndexOf('\n', Math.max(0, m.index - 400)));
      return text.slice(start, start + 6000);
    }
  }
  return null;
}

export function assertNoSanitizerReport(text, what = 'sluice output') {
  const rep = findSanitizerReport(text);
  if (rep) throw new Error(`sanitizer report found in ${what}:\n${rep}`);
}

export function makeTempDir(prefix = 'sluice-e2e-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// A port that was free a moment ago (listen on 0, read it, close).
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Children still alive when the test process exits are killed hard.
const live = new Set();
process.on('exit', () => {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
});

function waitExit(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode, timedOut: false });
  }
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.off('exit', onExit);
      resolve({ code: null, signal: null, timedOut: true });
    }, timeoutMs);
    const onExit = (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, timedOut: false });
    };
    child.once('exit', onExit);
  });
}

function tail(s, n = 4000) {
  return s.length > n ? '...' + s.slice(-n) : s;
}

/**
 * Start sluice with a YAML config written to a fresh temp dir.
 * options:
 *   config   YAML string (required)
 *   env      extra env vars (null/undefined value removes a var)
 *   args     extra CLI args
 *   files    {name: content} extra files written beside the config (e.g. '.env')
 *   cwd      working directory (default: the temp dir)
 *   host     --host value (default 127.0.0.1)
 *   workers  --num_workers (default 2)
 *   readyTimeoutMs  (default 10000)
 */
export async function startSluice({ config, env = {}, args = [], files = {}, cwd, host = '127.0.0.1', workers = 2, readyTimeoutMs = 10000 } = {}) {
  if (typeof config !== 'string') throw new TypeError('startSluice: config (YAML string) is required');
  if (!fs.existsSync(SLUICE_BIN)) throw new Error(`sluice binary not found at ${SLUICE_BIN} (build it with 'make build' or set SLUICE_BIN)`);
  const dir = makeTempDir();
  const configPath = path.join(dir, 'config.yaml');
  fs.writeFileSync(configPath, config);
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  const port = await freePort();

  const argv = ['--config', configPath, '--port', String(port), '--host', host, '--num_workers', String(workers), ...args];
  const child = spawn(SLUICE_BIN, argv, { cwd: cwd ?? dir, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  // A forgotten child must not keep the test process alive; the exit hook kills it.
  child.unref();
  child.stdout.unref?.();
  child.stderr.unref?.();
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  let spawnError = null;
  child.on('error', (e) => (spawnError = e));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('exit', () => live.delete(child));

  const baseURL = `http://127.0.0.1:${port}`;
  const describe = () => `command: ${SLUICE_BIN} ${argv.join(' ')}\n--- config ---\n${config}\n--- stdout ---\n${tail(out)}\n--- stderr ---\n${tail(err)}`;

  // Wait for liveness.
  const deadline = Date.now() + readyTimeoutMs;
  let ready = false;
  let lastErr = null;
  while (Date.now() < deadline) {
    if (spawnError) break;
    if (child.exitCode !== null || child.signalCode !== null) break;
    try {
      const r = await fetch(`${baseURL}/health/liveliness`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) {
        ready = true;
        break;
      }
      lastErr = `status ${r.status}`;
    } catch (e) {
      lastErr = e.cause?.code || e.message;
    }
    await sleep(50);
  }
  if (!ready) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await waitExit(child, 5000);
    } else {
      await sleep(50); // let stdio drain
    }
    const how = spawnError
      ? `failed to spawn: ${spawnError.message}`
      : child.exitCode !== null || child.signalCode !== null
        ? `exited early (code ${child.exitCode}, signal ${child.signalCode})`
        : `not live after ${readyTimeoutMs} ms (last: ${lastErr})`;
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`sluice ${how}\n${describe()}`);
  }

  let stopping = null;
  const handle = {
    port,
    pid: child.pid,
    baseURL,
    dir,
    configPath,
    url: (p = '/') => baseURL + (p.startsWith('/') ? p : '/' + p),
    stdout: () => out,
    stderr: () => err,
    get exitCode() {
      return child.exitCode;
    },
    /** true once stop() has been called (its promise is memoized). */
    get stopRequested() {
      return stopping !== null;
    },
    get running() {
      return child.exitCode === null && child.signalCode === null;
    },
    exited,
    /** SIGTERM, wait, assert clean exit (code 0) and no sanitizer report. */
    stop({ timeoutMs = 10000 } = {}) {
      if (!stopping) {
        stopping = (async () => {
          const wasRunning = child.exitCode === null && child.signalCode === null;
          if (wasRunning) child.kill('SIGTERM');
          let res = await waitExit(child, timeoutMs);
          if (res.timedOut) {
            child.kill('SIGKILL');
            await waitExit(child, 5000);
            throw new Error(`sluice did not exit within ${timeoutMs} ms of SIGTERM (killed)\n${describe()}`);
          }
          await sleep(20); // let stdio drain
          fs.rmSync(dir, { recursive: true, force: true });
          assertNoSanitizerReport(err + '\n' + out, 'sluice stderr/stdout');
          if (!wasRunning) {
            throw new Error(`sluice had already exited before stop() (code ${res.code}, signal ${res.signal})\n${describe()}`);
          }
          if (res.code !== 0) {
            throw new Error(`sluice exited with code ${res.code}, signal ${res.signal} after SIGTERM (expected 0)\n${describe()}`);
          }
          return res;
        })();
      }
      return stopping;
    },
    /** Hard kill without assertions (cleanup path). */
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
  return handle;
}

/**
 * Run sluice to completion (CLI tests).
 * Returns {code, signal, stdout, stderr, timedOut}. If it does not exit within
 * timeoutMs it is SIGKILLed and timedOut is true.
 */
export async function runSluice(args = [], { env = {}, cwd, timeoutMs = 10000 } = {}) {
  if (!fs.existsSync(SLUICE_BIN)) throw new Error(`sluice binary not found at ${SLUICE_BIN}`);
  const child = spawn(SLUICE_BIN, args, { cwd: cwd ?? os.tmpdir(), env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const closed = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const spawnErr = new Promise((resolve) => child.once('error', (e) => resolve({ error: e })));
  let timedOut = false;
  const t = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const res = await Promise.race([closed, spawnErr]);
  clearTimeout(t);
  live.delete(child);
  if (res.error) throw res.error;
  return { code: res.code, signal: res.signal, stdout, stderr, timedOut };
}

// ---------------------------------------------------------------------------
// Small shared helpers for tests

export function authHeaders(key = MASTER_KEY) {
  return { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
}

// fetch + JSON parse. Returns {status, headers, body, text}.
export async function fetchJSON(url, { method = 'GET', headers = {}, body, signal } = {}) {
  const init = { method, headers: { ...headers }, signal: signal ?? AbortSignal.timeout(15000) };
  if (body !== undefined) {
    init.body = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    if (!Object.keys(init.headers).some((h) => h.toLowerCase() === 'content-type')) init.headers['content-type'] = 'application/json';
  }
  const r = await fetch(url, init);
  const text = await r.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: r.status, headers: r.headers, body: parsed, text };
}

// Assert the LiteLLM/OpenAI error envelope and return the inner error object.
// With {exactCode: false} error.code only has to be a string (upstream errors
// passed through may keep the upstream's own code).
export function checkErrorEnvelope(assert, res, status, { exactCode = true } = {}) {
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${res.text}`);
  assert.ok(res.body && typeof res.body === 'object', `error body is not JSON: ${res.text}`);
  const e = res.body.error;
  assert.ok(e && typeof e === 'object', `no "error" object in body: ${res.text}`);
  assert.equal(typeof e.message, 'string', `error.message not a string: ${res.text}`);
  assert.ok(e.message.length > 0, 'error.message empty');
  assert.ok('type' in e, `error.type missing: ${res.text}`);
  assert.ok('param' in e, `error.param missing: ${res.text}`);
  assert.ok('code' in e, `error.code missing: ${res.text}`);
  if (exactCode) assert.equal(e.code, String(status), `error.code should be the string "${status}": ${res.text}`);
  else assert.equal(typeof e.code, 'string', `error.code should be a string: ${res.text}`);
  return e;
}

export function yamlStr(s) {
  return JSON.stringify(String(s)); // JSON strings are valid YAML double-quoted scalars
}
