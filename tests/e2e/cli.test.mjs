// Command line behaviour: help, version, config checking, startup refusals,
// and os.environ/ substitution.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, runSluice, makeTempDir, freePort, assertNoSanitizerReport, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient } from './lib/clients.mjs';

const GOOD_CONFIG = `model_list:
  - model_name: my-gpt
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:9/v1
      api_key: sk-upstream-secret
general_settings:
  master_key: ${MASTER_KEY}
`;

function output(r) {
  return `${r.stdout}\n${r.stderr}`;
}

function describeRun(r) {
  return `exit code ${r.code}, signal ${r.signal}${r.timedOut ? ' (killed: did not exit in time)' : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

describe('command line', () => {
  let dir;
  const write = (name, text) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };

  before(() => {
    dir = makeTempDir('sluice-cli-');
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--help exits 0 and documents --config and --port', async () => {
    const r = await runSluice(['--help']);
    assert.equal(r.code, 0, describeRun(r));
    assert.match(output(r), /--config/, describeRun(r));
    assert.match(output(r), /--port/, describeRun(r));
    assertNoSanitizerReport(output(r));
  });

  it('version exits 0 and prints something', async () => {
    const r = await runSluice(['version']);
    assert.equal(r.code, 0, describeRun(r));
    assert.ok(output(r).trim().length > 0, 'version output is not empty');
    assertNoSanitizerReport(output(r));
  });

  it('check accepts a good config', async () => {
    const cfg = write('good.yaml', GOOD_CONFIG);
    const r = await runSluice(['check', '--config', cfg]);
    assert.equal(r.code, 0, describeRun(r));
    assertNoSanitizerReport(output(r));
  });

  it('check reports problems of a bad config with file:line and exits non-zero', async () => {
    const cfg = write(
      'bad.yaml',
      [
        'model_list:', //                                     1
        '  - model_name: fine', //                            2
        '    litellm_params:', //                             3
        '      model: openai/gpt-4o', //                      4
        '      api_key: sk-x', //                             5
        '  - model_name: no-model-here', //                   6
        '    litellm_params:', //                             7
        '      api_base: http://127.0.0.1:9/v1', //           8
        'general_settings:', //                               9
        '  master_key: not-an-sk-key', //                     10
        '',
      ].join('\n'),
    );
    const r = await runSluice(['check', '--config', cfg]);
    assert.ok(!r.timedOut, describeRun(r));
    assert.notEqual(r.code, 0, describeRun(r));
    const refs = [...output(r).matchAll(/bad\.yaml:(\d+)/g)].map((m) => Number(m[1]));
    assert.ok(refs.length > 0, `expected problems formatted as bad.yaml:<line>\n${describeRun(r)}`);
    for (const line of refs) assert.ok(line >= 1 && line <= 11, `line ${line} is inside the file\n${describeRun(r)}`);
    assert.ok(
      refs.some((l) => l >= 6 && l <= 8) || refs.includes(10),
      `a reported line points at a real problem (entry at 6-8 without model, master_key at 10)\n${describeRun(r)}`,
    );
    assertNoSanitizerReport(output(r));
  });

  it('malformed YAML at startup exits with code 2 and reports line and column', async () => {
    const cfg = write(
      'malformed.yaml',
      ['model_list:', '  - model_name: broken', '    litellm_params:', '      model: openai/x', '      api_base: [unclosed, "x', 'general_settings:', `  master_key: ${MASTER_KEY}`, ''].join('\n'),
    );
    const port = await freePort();
    const r = await runSluice(['--config', cfg, '--port', String(port), '--host', '127.0.0.1'], { timeoutMs: 5000 });
    assert.ok(!r.timedOut, describeRun(r));
    assert.equal(r.code, 2, describeRun(r));
    const out = output(r);
    const lineCol = /:\d+:\d+/.test(out) || (/line\D{0,3}\d+/i.test(out) && /col(umn)?\D{0,3}\d+/i.test(out));
    assert.ok(lineCol, `message should give line and column\n${describeRun(r)}`);
    assertNoSanitizerReport(out);
  });

  it('refuses a master key that does not start with sk-', async () => {
    const cfg = write('badkey.yaml', GOOD_CONFIG.replace(MASTER_KEY, 'master-1234'));
    const port = await freePort();
    const r = await runSluice(['--config', cfg, '--port', String(port), '--host', '127.0.0.1'], { timeoutMs: 5000 });
    assert.ok(!r.timedOut, `sluice started with an invalid master key\n${describeRun(r)}`);
    assert.notEqual(r.code, 0, describeRun(r));
    assert.match(output(r), /sk-/, describeRun(r));
    assertNoSanitizerReport(output(r));
  });

  it('exits non-zero with a one-line error naming the port when the port is in use', async () => {
    const blocker = net.createServer();
    await new Promise((resolve, reject) => {
      blocker.once('error', reject);
      blocker.listen(0, '127.0.0.1', resolve);
    });
    const { port } = blocker.address();
    try {
      const cfg = write('port.yaml', GOOD_CONFIG);
      const r = await runSluice(['--config', cfg, '--port', String(port), '--host', '127.0.0.1', '--num_workers', '2'], { timeoutMs: 5000 });
      assert.ok(!r.timedOut, `sluice kept running on a busy port\n${describeRun(r)}`);
      assert.notEqual(r.code, 0, describeRun(r));
      const lines = output(r).split('\n').filter((l) => l.includes(String(port)));
      assert.ok(lines.length >= 1, `an error line names port ${port}\n${describeRun(r)}`);
      assertNoSanitizerReport(output(r));
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('refuses --host 0.0.0.0 without a master key', async () => {
    const cfg = write(
      'nokey.yaml',
      `model_list:
  - model_name: my-gpt
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:9/v1
      api_key: sk-upstream-secret
`,
    );
    const port = await freePort();
    const r = await runSluice(['--config', cfg, '--port', String(port), '--host', '0.0.0.0'], { timeoutMs: 5000 });
    assert.ok(!r.timedOut, `sluice listened on 0.0.0.0 without a master key\n${describeRun(r)}`);
    assert.notEqual(r.code, 0, describeRun(r));
    assertNoSanitizerReport(output(r));
  });

  describe('os.environ/ substitution', () => {
    let mock;
    before(async () => {
      mock = await startMock();
    });
    after(async () => {
      if (mock) await mock.close();
    });

    const envConfig = (keyVar, baseVar) => `model_list:
  - model_name: env-model
    litellm_params:
      model: openai/env-upstream
      api_base: os.environ/${baseVar}
      api_key: os.environ/${keyVar}
general_settings:
  master_key: ${MASTER_KEY}
`;

    it('substitutes api_key and api_base from the environment', async () => {
      mock.clearRequests();
      const sluice = await startSluice({
        config: envConfig('E2E_UPSTREAM_KEY', 'E2E_UPSTREAM_BASE'),
        env: { E2E_UPSTREAM_KEY: 'sk-from-environment', E2E_UPSTREAM_BASE: mock.baseURL },
      });
      try {
        const r = await openaiClient(sluice).chat.completions.create({ model: 'env-model', messages: [{ role: 'user', content: 'env' }] });
        assert.equal(r.choices[0].message.content, expectedChatText('env'));
        assert.equal(mock.requests.length, 1);
        assert.equal(mock.requests[0].headers.authorization, 'Bearer sk-from-environment');
        assert.equal(mock.requests[0].body.model, 'env-upstream');
      } finally {
        await sluice.stop();
      }
    });

    it('substitutes from a .env file beside the config', async () => {
      mock.clearRequests();
      const elsewhere = makeTempDir('sluice-cwd-'); // cwd is NOT the config dir
      try {
        const sluice = await startSluice({
          config: envConfig('E2E_DOTENV_KEY', 'E2E_DOTENV_BASE'),
          files: { '.env': `# comment\nE2E_DOTENV_KEY=sk-from-dotenv\nE2E_DOTENV_BASE=${mock.baseURL}\n` },
          cwd: elsewhere,
        });
        try {
          const r = await openaiClient(sluice).chat.completions.create({ model: 'env-model', messages: [{ role: 'user', content: 'dotenv' }] });
          assert.equal(r.choices[0].message.content, expectedChatText('dotenv'));
          assert.equal(mock.requests.length, 1);
          assert.equal(mock.requests[0].headers.authorization, 'Bearer sk-from-dotenv');
        } finally {
          await sluice.stop();
        }
      } finally {
        fs.rmSync(elsewhere, { recursive: true, force: true });
      }
    });
  });
});
