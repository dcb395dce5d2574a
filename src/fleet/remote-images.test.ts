import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { remoteReference } from './remote-images.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('remoteReference', () => {
  it.each(['web', 'team/app:1.0', DIGEST, 'web:1.0'])('leaves %s to the store', (ref) => {
    expect(remoteReference(ref)).toBeUndefined();
  });

  it('reads registry/repository@digest', () => {
    expect(remoteReference(`127.0.0.1:5000/kiln/web@${DIGEST}`)).toEqual({
      registry: '127.0.0.1:5000',
      repository: 'kiln/web',
      digest: DIGEST,
    });
  });

  it('refuses a registry image named by tag, saying to name it by digest', () => {
    expect(() => remoteReference('registry.example.com/kiln/web:1.0')).toThrow(ValidationError);
    expect(() => remoteReference('registry.example.com/kiln/web:1.0')).toThrow(
      /a tag can be moved.*registry\.example\.com\/kiln\/web@sha256:/s,
    );
  });
});
