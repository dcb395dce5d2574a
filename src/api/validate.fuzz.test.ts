/**
 * Hostile requests against the API: every body and query schema fed arbitrary JSON and bytes, and
 * a real server (port 0, 127.0.0.1, over a fake plane) sent random methods, paths, queries, tokens
 * and bodies. Each must be answered with a documented status and a JSON error naming what is
 * wrong, never a 500, and the server must log no failure of its own.
 */
import http from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { expectKilnError, fuzzParams, fuzzTimeout } from '../../test/support/fuzz.js';
import { ROUTES } from './routes.js';
import { serve } from './testkit.js';
import * as validate from './validate.js';

/** Every body and query schema validate.ts exports, by name. */
const CHECKED = Object.entries(validate as Record<string, unknown>).filter(
  (e): e is [string, validate.Checked<unknown>] =>
    typeof e[1] === 'object' && e[1] !== null && 'schema' in e[1] && 'fixes' in e[1],
);

const hostileJson = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.dictionary(
    fc.oneof(
      fc.constantFrom(
        'image',
        'strategy',
        'reason',
        'to',
        'full',
        'base',
        'baseDigest',
        'targets',
        'kills',
        'interval',
        'mode',
        'dryRun',
        'name',
        'scopes',
        '__proto__',
        'constructor',
      ),
      fc.string({ maxLength: 8 }),
    ),
    fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom('r1', 'r0', 'sha256:' + 'a'.repeat(64), '2s', '-1s', 'x'.repeat(2000), 1e308, -0),
    ),
  ),
);
const body = fc.oneof(
  { weight: 5, arbitrary: hostileJson.map((v) => Buffer.from(JSON.stringify(v) ?? '')) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        '',
        '{',
        '[]',
        'null',
        '{"a":1,"a":2}',
        '\uFEFF{}',
        `${'['.repeat(5000)}${']'.repeat(5000)}`,
      )
      .map((s) => Buffer.from(s)),
  },
);

describe('request validation', () => {
  it('knows every schema it fuzzes', () => {
    expect(CHECKED.map(([name]) => name)).toEqual(
      expect.arrayContaining(['DEPLOY_REQUEST', 'RING_REQUEST', 'EVENTS_QUERY', 'NO_QUERY']),
    );
  });

  it(
    'parseBody: the value or a ValidationError for the request body, each issue with a path and message',
    () => {
      fc.assert(
        fc.property(fc.constantFrom(...CHECKED), body, ([name, checked], bytes) => {
          try {
            validate.parseBody(bytes, checked);
          } catch (err) {
            expectKilnError(err, name);
            expect(err).toBeInstanceOf(ValidationError);
            expect((err as ValidationError).file).toBe('request body');
            for (const issue of (err as ValidationError).issues)
              expect(issue.message.length).toBeGreaterThan(0);
          }
        }),
        fuzzParams(400),
      );
    },
    fuzzTimeout(400),
  );

  it(
    'parseQuery: a parameter the schema does not name is always refused, `__proto__` included',
    () => {
      const key = fc.oneof(
        fc.constantFrom('limit', 'service', 'since', 'tail', 'run', '__proto__', 'constructor', 'toString'),
        fc.string({ maxLength: 6 }),
      );
      const pairs = fc.array(
        fc.tuple(
          key,
          fc.oneof(fc.constantFrom('1', '0', '99999', 'web', '', '-1', '1e3'), fc.string({ maxLength: 10 })),
        ),
        { maxLength: 4 },
      );
      fc.assert(
        fc.property(fc.constantFrom(...CHECKED), pairs, ([name, checked], kv) => {
          const query = new URLSearchParams(kv);
          const unknown = kv.some(([k]) => !Object.hasOwn(checked.fixes, k));
          try {
            validate.parseQuery(query, checked);
            expect(unknown, `${name} accepted ${query}`).toBe(false);
          } catch (err) {
            expectKilnError(err, name);
            expect(err).toBeInstanceOf(ValidationError);
            expect((err as ValidationError).file).toBe('query');
          }
        }),
        fuzzParams(400),
      );
    },
    fuzzTimeout(400),
  );
});

/** Sends one raw request (any path, any method) and reads the whole answer. */
function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  data: Buffer,
): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type'] ?? ''),
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(method === 'GET' || method === 'HEAD' ? undefined : data);
  });
}

describe('the API server against random requests', () => {
  const undo: (() => unknown)[] = [];
  let server: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    server = await serve(undo);
  });
  afterAll(async () => {
    for (const fn of undo.splice(0).reverse()) await fn();
  });

  /** Path segments that stress decoding and routing. */
  const segment = fc.oneof(
    fc.constantFrom(
      'web',
      'nope',
      'r1',
      'promote',
      'bogus',
      '%',
      '%zz',
      '%2F',
      '%00',
      '..',
      '.',
      '',
      'x'.repeat(3000),
      '%C0%AF',
      '%E2%80%AE',
    ),
    fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/),
  );
  const path = fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .tuple(
          fc.constantFrom(...ROUTES.map((r) => r.path)),
          fc.array(segment, { minLength: 4, maxLength: 4 }),
        )
        .map(([p, segs]) => {
          let i = 0;
          return p.replace(/:[a-z]+/g, () => segs[i++ % segs.length]!);
        }),
    },
    { weight: 1, arbitrary: fc.array(segment, { maxLength: 5 }).map((s) => `/v1/${s.join('/')}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '/',
        '//',
        '/v1',
        '/v1/',
        '/v1//status',
        '/v1/services/web/deploy/',
        '/ui/../v1/status',
        '*',
      ),
    },
  );
  const query = fc.array(
    fc.tuple(
      fc.constantFrom('limit', 'service', 'since', 'tail', 'run', '__proto__', 'x'),
      fc.constantFrom('1', 'web', '', '-1', '%', '99999999999'),
    ),
    { maxLength: 3 },
  );
  const request = fc.record({
    method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
    path,
    query,
    token: fc.constantFrom('admin', 'admin', 'admin', 'reader', 'ci', 'none', 'garbage', 'basic'),
    body,
  });

  it('records a refused call whose path names something 3000 characters long (the record was lost)', async () => {
    const res = await send(
      server.api.port,
      'POST',
      `/v1/services/${'x'.repeat(3000)}/deploy`,
      {},
      Buffer.from('{}'),
    );
    expect(res.status).toBe(401);
    const [last] = server.store.audit.tail(1);
    expect(last).toMatchObject({ action: 'deploy', result: 'denied' });
    expect(last!.target).toHaveLength(1024);
    expect(server.logs).toEqual([]);
  });

  it(
    'answers every request with a documented status and a JSON error, never a 500',
    async () => {
      const documented = [200, 201, 202, 303, 400, 401, 403, 404, 405, 409, 413, 503];
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const q = r.query.map(([k, v]) => `${k}=${v}`).join('&');
          const headers: Record<string, string> = {};
          if (r.token === 'garbage') headers.authorization = 'Bearer kiln_\u00ff';
          else if (r.token === 'basic') headers.authorization = 'Basic YTpi';
          else if (r.token !== 'none')
            headers.authorization = `Bearer ${server.tokens[r.token as 'admin' | 'reader' | 'ci']}`;
          const res = await send(server.api.port, r.method, `${r.path}${q ? `?${q}` : ''}`, headers, r.body);
          expect(documented, `${r.method} ${r.path}: ${res.status} ${res.text.slice(0, 200)}`).toContain(
            res.status,
          );
          if (res.status >= 400 && res.type.startsWith('application/json')) {
            const error = (JSON.parse(res.text) as { error: { code: string; message: string } }).error;
            expect(error.code.length).toBeGreaterThan(0);
            expect(error.message.length).toBeGreaterThan(10);
          }
          expect(server.logs).toEqual([]);
        }),
        fuzzParams(150, 0.1),
      );
    },
    fuzzTimeout(150, 0.1, 50),
  );
});
