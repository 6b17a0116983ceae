// A throwaway PostgreSQL for the postgres-*.test.mjs suites, through scripts/pg.sh.
//
//   if (!pgAvailable()) ...skip...
//   const pg = await startPostgres();   // fresh cluster in a mkdtemp dir (tmpfs if any), on a free
//                                       // 127.0.0.1 port
//   pg.url      postgresql://postgres@127.0.0.1:<port>/sluice_test
//   pg.port, pg.dir
//   await pg.down();   // stop the server, keeping its data (an outage as clients see it)
//   await pg.up();     // start it again on the same port and data; resolves once it accepts TCP
//   await pg.query('SELECT count(*) FROM t')   // psql -At; resolves to its stdout (trimmed)
//   await pg.stop();   // stop and remove the directory (idempotent; call it in `after`)
//
// A cluster that was not stopped (a test process that dies early) is stopped by an exit hook.
// Authentication is trust, listening on 127.0.0.1 only (see scripts/pg.sh).

import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { E2E_DIR, freePort } from './sluice.mjs';

export const PG_SH = path.resolve(E2E_DIR, '../../scripts/pg.sh');

function findPgBin() {
  if (process.env.PG_BIN) return fs.existsSync(path.join(process.env.PG_BIN, 'initdb')) ? process.env.PG_BIN : null;
  const root = '/usr/lib/postgresql';
  let versions = [];
  try {
    versions = fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')));
  } catch {
    return null;
  }
  versions.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  return versions.length ? path.join(root, versions[versions.length - 1], 'bin') : null;
}

export const PG_BIN = findPgBin();

/** true when scripts/pg.sh can run a server here (the Debian postgresql package). */
export function pgAvailable() {
  if (!PG_BIN || !fs.existsSync(PG_SH)) return false;
  if (process.getuid && process.getuid() === 0) {
    // as root pg.sh runs the server as the `postgres` OS user
    return spawnSync('id', ['postgres'], { stdio: 'ignore' }).status === 0;
  }
  return true;
}

const isRoot = () => !!process.getuid && process.getuid() === 0;

function run(file, args, { timeoutMs = 60000 } = {}) {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, cwd: '/', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout: String(stdout), stderr: String(stderr), err });
    });
  });
}

// A command as the cluster's owner (pg.sh's `as_pg`).
function asPg(file, args, opts) {
  return isRoot() ? run('runuser', ['-u', 'postgres', '--', file, ...args], opts) : run(file, args, opts);
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Where clusters go: tmpfs when there is one (initdb and removing the cluster take seconds on
// a slow disk, a fraction of that in memory; fsync is off anyway), else the temp dir.
// SLUICE_PG_TMPDIR overrides. Its parents must be searchable by the postgres user when root.
function clusterParent() {
  if (process.env.SLUICE_PG_TMPDIR) return process.env.SLUICE_PG_TMPDIR;
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK | fs.constants.X_OK);
    if (fs.statSync('/dev/shm').isDirectory()) return '/dev/shm';
  } catch {}
  return os.tmpdir();
}

const live = new Set();
process.on('exit', () => {
  for (const dir of live) spawnSync('bash', [PG_SH, 'stop', dir], { stdio: 'ignore', timeout: 15000 });
});

/** Starts a fresh cluster. Retries on another port when the chosen one was taken meanwhile. */
export async function startPostgres({ attempts = 3 } = {}) {
  if (!pgAvailable()) throw new Error('PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)');
  let lastErr = '';
  for (let i = 0; i < attempts; i++) {
    // short: the server's unix socket lives in this directory (path limit ~100 bytes)
    const dir = fs.mkdtempSync(path.join(clusterParent(), 'sluice-pg-'));
    const port = await freePort();
    live.add(dir);
    const r = await run('bash', [PG_SH, 'start', dir, String(port)], { timeoutMs: 90000 });
    const url = r.stdout.trim().split('\n').pop();
    if (r.code === 0 && /^postgresql:\/\//.test(url)) return handle(dir, port, url);
    lastErr = `pg.sh start ${dir} ${port} exited ${r.code}\n${r.stderr}${r.stdout}`;
    await run('bash', [PG_SH, 'stop', dir], { timeoutMs: 30000 });
    live.delete(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  throw new Error(`could not start PostgreSQL: ${lastErr}`);
}

function handle(dir, port, url) {
  const data = path.join(dir, 'data');
  let stopped = null;
  const pg = {
    dir,
    port,
    url,
    /** Stops the server (fast shutdown: clients are disconnected), keeping the data. */
    async down() {
      const r = await asPg(path.join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', '-t', '10', 'stop'], { timeoutMs: 20000 });
      if (r.code !== 0) {
        // fall back to the postmaster's pid (first line of postmaster.pid)
        let pid = NaN;
        try {
          pid = parseInt(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0], 10);
        } catch {}
        if (Number.isInteger(pid) && pid > 0) {
          try {
            process.kill(pid, 'SIGINT'); // PostgreSQL's "fast" shutdown
          } catch {}
        }
      }
      const deadline = Date.now() + 10000;
      while (Date.now() < deadline) {
        if (!(await canConnect(port))) return;
        await sleep(50);
      }
      throw new Error(`PostgreSQL on port ${port} still accepts connections after stopping it: ${r.stderr}`);
    },
    /** Starts the stopped server again (same data, same port); resolves once it accepts TCP. */
    async up() {
      const r = await asPg(path.join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', path.join(dir, 'server.log'), '-w', '-t', '30', 'start'], { timeoutMs: 40000 });
      if (r.code !== 0) {
        let log = '';
        try {
          log = fs.readFileSync(path.join(dir, 'server.log'), 'utf8').slice(-2000);
        } catch {}
        throw new Error(`pg_ctl start failed (${r.code}): ${r.stderr}\n${log}`);
      }
      const deadline = Date.now() + 10000;
      while (Date.now() < deadline) {
        if (await canConnect(port)) return;
        await sleep(50);
      }
      throw new Error(`PostgreSQL on port ${port} does not accept connections after pg_ctl start`);
    },
    /** Runs one SQL statement with psql; resolves to its unaligned output. */
    async query(sql) {
      const psql = fs.existsSync(path.join(PG_BIN, 'psql')) ? path.join(PG_BIN, 'psql') : 'psql';
      const r = await run(psql, ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'sluice_test', '-c', sql], { timeoutMs: 15000 });
      if (r.code !== 0) throw new Error(`psql failed (${r.code}): ${r.stderr}`);
      return r.stdout.trim();
    },
    /** Stops the server and removes its directory. Idempotent. */
    stop() {
      if (!stopped) {
        stopped = (async () => {
          // A clean pg_ctl stop first: pg.sh stop then finds no pid file and only removes the
          // directory (its by-pid fallback waits for the reaping of the postmaster otherwise).
          await asPg(path.join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', '-t', '10', 'stop'], { timeoutMs: 20000 });
          const r = await run('bash', [PG_SH, 'stop', dir], { timeoutMs: 30000 });
          live.delete(dir);
          if (r.code !== 0) throw new Error(`pg.sh stop ${dir} failed (${r.code}): ${r.stderr}`);
        })();
      }
      return stopped;
    },
  };
  return pg;
}
