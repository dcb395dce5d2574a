import { afterEach, describe, expect, it } from 'vitest';
import { IntegrityError, KilnError } from '../errors/index.js';
import { IN_MEMORY, openState } from '../state/index.js';
import { ApiClient } from './client.js';
import { FakeControlPlane } from './fake.js';
import { errorAnswer } from './http.js';
import { startApiServer } from './server.js';

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

const REFUSAL =
  'web: refusing to deploy web (sha256:…): no signature by a key the service trusts\n  fix: add the key that signed it to trust.keys';

describe('a deploy refused for integrity', () => {
  it('is answered 422 with code "integrity" and the whole message, not as an internal error', () => {
    expect(errorAnswer(new IntegrityError(REFUSAL))).toEqual({
      status: 422,
      body: { error: { code: 'integrity', message: REFUSAL } },
      headers: {},
      internal: false,
    });
  });

  it("comes back to the client as an integrity error (exit code 4), with the server's message", async () => {
    // Given a server whose control plane refuses the next deploy as an integrity failure
    const store = openState(IN_MEMORY);
    undo.push(() => store.close());
    const plane = new FakeControlPlane();
    plane.seedService('web');
    plane.failNext('deploy', new IntegrityError(REFUSAL));
    const api = await startApiServer({ plane, tokens: store.tokens, version: '9.9.9', log: () => {} });
    undo.push(() => api.close());
    const client = new ApiClient({ url: api.url, token: store.tokens.create('ci', ['deploy']).secret });

    // When the client deploys
    const err = await client.deploy('web', {}).catch((e: unknown) => e);

    // Then it gets the refusal as an integrity error (the CLI exits 4) with the server's message
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe('integrity');
    expect((err as Error).message).toBe(REFUSAL);
  });
});
