import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { parseChallenges } from './http.js';
import { formatReference, isLoopbackHost, parseReference } from './reference.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('parseReference', () => {
  it.each([
    ['localhost:5000/team/app:1.0', { registry: 'localhost:5000', repository: 'team/app', tag: '1.0' }],
    ['localhost/app', { registry: 'localhost', repository: 'app' }],
    [`127.0.0.1:5000/app@${D}`, { registry: '127.0.0.1:5000', repository: 'app', digest: D }],
    [
      `registry.example.com/a/b/c:v1_x-2@${D}`,
      { registry: 'registry.example.com', repository: 'a/b/c', tag: 'v1_x-2', digest: D },
    ],
    ['[::1]:5000/app.name__x:latest', { registry: '[::1]:5000', repository: 'app.name__x', tag: 'latest' }],
  ])('parses %s', (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
    expect(formatReference(parseReference(input))).toBe(input);
  });

  it.each([
    ['', /empty reference/],
    ['team/app:1.0', /no registry host.*fix: start with the registry, e.g\. localhost:5000\/team\/app:1\.0/s],
    ['app', /no registry host/],
    ['localhost:5000/Team/App', /repository component "Team" is not valid.*lowercase/s],
    ['localhost:5000/app:-bad', /tag "-bad" is not valid/],
    ['localhost:5000/app@sha256:xyz', /"sha256:xyz" is not a sha256 digest/],
    ['localhost:5000/app@md5:abc', /is not a sha256 digest/],
    ['local_host:5000/app', /registry "local_host:5000" is not a host\[:port\]/],
    ['localhost:5000/', /repository is empty/],
    ['localhost:5000/a//b', /repository component "" is not valid/],
  ])('refuses %j', (input, message) => {
    const err = (() => {
      try {
        parseReference(input);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(message);
  });
});

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1:5000', true],
    ['127.1.2.3', true],
    ['localhost:80', true],
    ['[::1]:5000', true],
    ['::1', true],
    ['128.0.0.1', false],
    ['127.0.0.256', false],
    ['10.0.0.1:5000', false],
    ['localhost.example.com', false],
    ['registry.example.com', false],
  ])('%s → %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});

describe('parseChallenges', () => {
  it('reads Bearer parameters, quoted or not, and several challenges in one header', () => {
    expect(
      parseChallenges(
        'Bearer realm="http://127.0.0.1:9/token",service="reg",scope="repository:a/b:pull,push"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'http://127.0.0.1:9/token', service: 'reg', scope: 'repository:a/b:pull,push' },
      },
    ]);
    expect(parseChallenges('Basic realm="a \\"b\\"", Bearer realm=x,error=insufficient_scope')).toEqual([
      { scheme: 'basic', params: { realm: 'a "b"' } },
      { scheme: 'bearer', params: { realm: 'x', error: 'insufficient_scope' } },
    ]);
    expect(parseChallenges(undefined)).toEqual([]);
  });
});
