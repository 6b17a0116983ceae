// TLS verification of upstream calls: litellm_params.ssl_verify (per deployment),
// litellm_settings.ssl_verify (global), and the SSL_VERIFY / SSL_CERT_FILE environment variables.
//
// A throwaway CA and a server certificate for 127.0.0.1 / localhost are made with the openssl CLI
// in a temp dir; an HTTPS OpenAI-compatible mock serves with that certificate on 127.0.0.1. The
// CA is in no system store, so verifying with the defaults must fail, and verifying against
// ca.pem (or not verifying) must succeed. Nothing leaves 127.0.0.1.
//
// Precedence checked: the environment over litellm_settings, a deployment's own ssl_verify over
// the global setting. Several deployments of one sluice (one worker, so pooled curl handles and
// cached connections are shared) point at the same mock, in an order that would show one
// deployment's setting leaking into another's transfer.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, makeTempDir, fetchJSON, authHeaders, checkErrorEnvelope, yamlStr, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, collect, contentOf, OpenAI } from './lib/clients.mjs';

const SECRET = 'sk-tls-upstream-secret-do-not-leak';

function openssl(dir, args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

// ca.pem (a CA nobody trusts) and server.pem/server.key signed by it for 127.0.0.1 and localhost.
function makeCerts(dir) {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=sluice e2e throwaway CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  openssl(dir, ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(path.join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem',
    '-days', '2', '-extfile', 'server.ext']);
  return {
    caFile: path.join(dir, 'ca.pem'),
    key: fs.readFileSync(path.join(dir, 'server.key')),
    cert: fs.readFileSync(path.join(dir, 'server.pem')),
  };
}

// A certificate that does not verify fails the same way every time: no retries, fast tests.
const FAST = `router_settings:
  num_retries: 0
general_settings:
  master_key: ${MASTER_KEY}
`;

const ask = (text) => [{ role: 'user', content: text }];

function deployment(name, mock, extra = '') {
  return `
  - model_name: ${name}
    litellm_params:
      model: openai/${name}-upstream
      api_base: ${mock.baseURL}
      api_key: ${SECRET}
      timeout: 5${extra}`;
}

// The machine's own TLS environment must not decide the outcome; cases that want one set it.
const NO_TLS_ENV = { SSL_VERIFY: null, SSL_CERT_FILE: null, SSL_CERT_DIR: null };

describe('upstream TLS verification (ssl_verify, SSL_VERIFY, SSL_CERT_FILE)', () => {
  let dir;
  let certs;
  let mock;
  const sluices = {};
  const clients = {};

  async function expectOk(name, model, text) {
    const res = await clients[name].chat.completions.create({ model, messages: ask(text) });
    assert.equal(res.choices[0].message.content, expectedChatText(text));
  }

  // 502 from sluice naming the provider, the host and a TLS certificate problem; no key.
  async function expectCertError(name, model) {
    const s = sluices[name];
    const res = await fetchJSON(s.url('/v1/chat/completions'), {
      method: 'POST',
      headers: authHeaders(),
      body: { model, messages: ask('hello over tls') },
    });
    const e = checkErrorEnvelope(assert, res, 502);
    assert.match(e.message, /TLS certificate problem/, e.message);
    assert.match(e.message, /SSL certificate problem/i, `curl's reason is kept: ${e.message}`);
    assert.match(e.message, /provider 'openai'/, e.message);
    assert.ok(e.message.includes(`127.0.0.1:${mock.port}`), `names host:port: ${e.message}`);
    assert.ok(!res.text.includes(SECRET), 'the provider key must not appear in the error');
    // the SDK sees it as an API error with that status
    await assert.rejects(clients[name].chat.completions.create({ model, messages: ask('again') }), (err) => {
      assert.ok(err instanceof OpenAI.APIError, `expected APIError, got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.status, 502, err.message);
      assert.match(err.message, /TLS certificate problem/);
      return true;
    });
  }

  before(async () => {
    dir = makeTempDir('sluice-e2e-tls-');
    certs = makeCerts(dir);
    mock = await startMock({ tls: { key: certs.key, cert: certs.cert } });
    assert.match(mock.baseURL, /^https:\/\/127\.0\.0\.1:/);
    const ca = yamlStr(certs.caFile);
    const configs = {
      // per deployment; one worker so every deployment shares the curl handle pool
      perDeployment: {
        workers: 1,
        env: NO_TLS_ENV,
        config: `
model_list:${deployment('verify-default', mock)}${deployment('verify-off', mock, '\n      ssl_verify: false')}${deployment('verify-ca', mock, `\n      ssl_verify: ${ca}`)}${deployment('verify-on', mock, '\n      ssl_verify: true')}
${FAST}`,
      },
      // global off in litellm_settings; a deployment saying true still verifies
      globalOff: {
        env: NO_TLS_ENV,
        config: `
model_list:${deployment('inherit', mock)}${deployment('verify-on', mock, '\n      ssl_verify: true')}${deployment('verify-ca', mock, `\n      ssl_verify: ${ca}`)}
litellm_settings:
  ssl_verify: false
${FAST}`,
      },
      // SSL_CERT_FILE names the CA bundle for every deployment
      certFileEnv: {
        env: { ...NO_TLS_ENV, SSL_CERT_FILE: certs.caFile },
        config: `
model_list:${deployment('inherit', mock)}
${FAST}`,
      },
      // SSL_VERIFY=False wins over litellm_settings.ssl_verify: true; a deployment's true still wins
      verifyEnvOff: {
        env: { ...NO_TLS_ENV, SSL_VERIFY: 'False' },
        config: `
model_list:${deployment('inherit', mock)}${deployment('verify-on', mock, '\n      ssl_verify: true')}
litellm_settings:
  ssl_verify: true
${FAST}`,
      },
    };
    await Promise.all(
      Object.entries(configs).map(async ([name, opts]) => {
        sluices[name] = await startSluice(opts);
        clients[name] = openaiClient(sluices[name]);
      }),
    );
  });

  after(async () => {
    try {
      const stops = Object.values(sluices).map((s) => (s.stopRequested ? null : s.stop()));
      const results = await Promise.allSettled(stops);
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    } finally {
      await mock?.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('(a) verifies by default: a certificate from an unknown CA is a 502 naming TLS, provider and host', async () => {
    await expectCertError('perDeployment', 'verify-default');
    await expectCertError('perDeployment', 'verify-on');
  });

  it('(b) litellm_params.ssl_verify: false skips verification', async () => {
    await expectOk('perDeployment', 'verify-off', 'no verification please');
    const stream = await clients.perDeployment.chat.completions.create({ model: 'verify-off', messages: ask('streamed over tls'), stream: true });
    assert.equal(contentOf(await collect(stream)), expectedChatText('streamed over tls'));
  });

  it('(c) litellm_params.ssl_verify: /path/ca.pem verifies against that bundle', async () => {
    await expectOk('perDeployment', 'verify-ca', 'verified by my own ca');
  });

  it('settings do not leak between deployments sharing handles and connections', async () => {
    // alternate so a pooled handle (and a kept-alive connection to the same host:port) made
    // under one setting is offered to the next transfer with another
    for (let i = 0; i < 3; i++) {
      await expectOk('perDeployment', 'verify-off', `off ${i}`);
      await expectCertError('perDeployment', 'verify-default');
      await expectOk('perDeployment', 'verify-ca', `ca ${i}`);
      await expectCertError('perDeployment', 'verify-on');
    }
  });

  it('(d) litellm_settings.ssl_verify: false applies globally; a deployment with ssl_verify: true still fails', async () => {
    await expectOk('globalOff', 'inherit', 'global verification off');
    await expectCertError('globalOff', 'verify-on');
    await expectOk('globalOff', 'verify-ca', 'own bundle under global off');
  });

  it('(e) SSL_CERT_FILE=/path/ca.pem is the CA bundle', async () => {
    await expectOk('certFileEnv', 'inherit', 'trusted through SSL_CERT_FILE');
  });

  it('(f) SSL_VERIFY=False turns verification off, over litellm_settings.ssl_verify: true', async () => {
    await expectOk('verifyEnvOff', 'inherit', 'SSL_VERIFY says no');
    await expectCertError('verifyEnvOff', 'verify-on');
  });

  it('never logs the provider key', () => {
    for (const s of Object.values(sluices)) {
      assert.ok(!s.stderr().includes(SECRET) && !s.stdout().includes(SECRET), 'provider key in sluice output');
    }
  });
});
