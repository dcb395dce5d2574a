import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  loadOrCreateSigningKey,
  SBOM_MEDIA_TYPE,
  SIGNATURE_ARTIFACT_TYPE,
  signManifest,
} from '../bake/index.js';
import { ConflictError, NotFoundError } from '../errors/index.js';
import { ExecSessions, type DriftWatch, type InstanceVerdict } from '../fleet/index.js';
import { canonicalJson, keyId, MediaType, OciStore, type Digest } from '../oci/index.js';
import type { RuntimeDriver } from '../runtime/index.js';
import { serviceSchema } from '../spec/index.js';
import { IN_MEMORY, openState } from '../state/index.js';
import { KnownStatePlane } from './plane-known.js';

const D1 = `sha256:${'1'.repeat(64)}` as Digest;
const D2 = `sha256:${'2'.repeat(64)}` as Digest;

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

/** A state store with `web` (alert or replace) released as r1 (D1, 2 instances) and r2 (D2, 1), and an image store. */
async function setup(drift: { action?: 'alert' | 'replace' } = {}) {
  const home = await mkdtemp(path.join(tmpdir(), 'kiln-known-'));
  undo.push(() => rm(home, { recursive: true, force: true }));
  const store = openState(IN_MEMORY);
  undo.push(() => store.close());
  const spec = serviceSchema.parse({
    name: 'web',
    image: 'web',
    port: 8080,
    drift: { execGrace: '2s', ...drift },
  });
  store.services.put('web', spec);
  for (const digest of [D1, D2]) {
    store.releases.create({
      service: 'web',
      digest,
      configHash: D1,
      spec: { service: spec },
      createdBy: 't',
      reason: 'test',
    });
  }
  store.rollouts.create({ service: 'web', toRelease: 1, strategy: 'rolling' });
  const ids = [
    store.instances.create({ service: 'web', release: 1 }).id,
    store.instances.create({ service: 'web', release: 1 }).id,
    store.instances.create({ service: 'web', release: 2 }).id,
  ];
  const images = await OciStore.open(path.join(home, 'store'));
  const keysDir = path.join(home, 'keys');
  const taints: string[] = [];
  const sessions = new ExecSessions({
    store,
    taint: (id, reason, message, replace) => {
      taints.push(`${id} ${reason} ${replace}`);
      store.instances.update(id, { taint: { reason, message } });
    },
  });
  const verdicts: InstanceVerdict[] = [];
  const drifts = { check: async () => verdicts } as unknown as DriftWatch;
  const driver = {
    execCommand: async (id: string, args: readonly string[], o: { tty?: boolean } = {}) => {
      if (id === ids[2]) throw new ConflictError(`instance ${id} is stopped, not running`);
      return ['crun', '--root', '/run/kiln', 'exec', ...(o.tty ? ['--tty'] : []), id, ...args];
    },
  } as unknown as RuntimeDriver;
  const plane = new KnownStatePlane({
    store,
    driver,
    drift: drifts,
    sessions,
    imageStore: images.dir,
    keysDir,
    clock: () => Date.parse('2026-01-02T00:00:00.000Z'),
  });
  return { store, images, keysDir, plane, ids, taints, verdicts };
}

const subject = (digest: Digest) => ({ mediaType: MediaType.ImageManifest, digest, size: 100 });

describe('KnownStatePlane.securityReport', () => {
  it('reports each running digest with its signer and SBOM, and the instances tainted in the last day', async () => {
    const { store, images, keysDir, plane, ids } = await setup();
    const key = await loadOrCreateSigningKey(keysDir);
    await images.attach(subject(D1), {
      artifactType: SIGNATURE_ARTIFACT_TYPE,
      mediaType: SIGNATURE_ARTIFACT_TYPE,
      data: canonicalJson(signManifest(key, 'web', D1)),
    });
    const bom = {
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      components: [
        { name: 'libc6', version: '2.36-9', properties: [{ name: 'kiln:debian:suite', value: 'testing' }] },
        {
          name: 'tzdata',
          version: '2024a-1',
          properties: [{ name: 'kiln:debian:suite', value: 'testing-updates' }],
        },
      ],
    };
    const sbom = await images.attach(subject(D1), {
      artifactType: SBOM_MEDIA_TYPE,
      mediaType: SBOM_MEDIA_TYPE,
      data: canonicalJson(bom),
    });
    // D2 is signed by a key the service does not trust.
    const other = generateKeyPairSync('ed25519');
    await images.attach(subject(D2), {
      artifactType: SIGNATURE_ARTIFACT_TYPE,
      mediaType: SIGNATURE_ARTIFACT_TYPE,
      data: canonicalJson(
        signManifest({ privateKey: other.privateKey, keyid: keyId(other.publicKey) } as never, 'web', D2),
      ),
    });
    store.instances.update(ids[0]!, { taint: { reason: 'DriftDetected', message: '/etc/evil added' } });

    const report = await plane.securityReport();
    expect(report.generatedAt).toBe('2026-01-02T00:00:00.000Z');
    expect(report.taintedSince).toBe('2026-01-01T00:00:00.000Z');
    expect(report.services).toHaveLength(1);
    const [web] = report.services;
    expect(web!.release).toBe('r1');
    expect(web!.images.map((i) => [i.digest, i.instances, i.releases])).toEqual([
      [D1, 2, ['r1']],
      [D2, 1, ['r2']],
    ]);
    expect(web!.images[0]!.signer).toEqual({
      keyid: key.keyid,
      trusted: true,
      source: path.join(keysDir, 'signing.pub'),
    });
    expect(web!.images[0]!.sbom).toEqual({
      digest: sbom.digest,
      mediaType: SBOM_MEDIA_TYPE,
      artifactType: SBOM_MEDIA_TYPE,
      subject: D1,
      store: images.dir,
      components: 2,
      packages: [
        { name: 'libc6', version: '2.36-9', suite: 'testing' },
        { name: 'tzdata', version: '2024a-1', suite: 'testing-updates' },
      ],
    });
    expect(web!.images[1]!.signer).toBeNull();
    expect(web!.images[1]!.signers).toEqual([{ keyid: keyId(other.publicKey), trusted: false }]);
    expect(web!.images[1]!.sbom).toBeNull();
    expect(web!.tainted).toEqual([
      {
        id: ids[0],
        release: 'r1',
        state: 'starting',
        taint: { reason: 'DriftDetected', message: '/etc/evil added', at: expect.any(String) },
      },
    ]);
  });

  it('says why signatures could not be checked instead of failing the report', async () => {
    const { plane } = await setup();
    const report = await plane.securityReport();
    expect(report.services[0]!.images[0]).toMatchObject({
      signer: null,
      signers: [],
      signerError: expect.stringContaining('signing.pub does not exist'),
      sbom: null,
    });
  });
});

describe('KnownStatePlane exec', () => {
  it('audits the opening, taints the instance with replacement held, and audits the end', async () => {
    const { store, plane, ids, taints } = await setup();
    const s = await plane.execOpen(ids[0]!, { command: ['/bin/sh', '-c', 'echo hi'] }, 'alice');
    expect(s).toMatchObject({
      instance: ids[0],
      service: 'web',
      actor: 'alice',
      state: 'open',
      argv: ['crun', '--root', '/run/kiln', 'exec', ids[0], '/bin/sh', '-c', 'echo hi'],
      graceMs: 2000,
      replace: true,
    });
    expect(taints).toEqual([`${ids[0]} ExecDetected false`]);
    expect((await plane.execHeartbeat(s.session)).state).toBe('open');
    const ended = await plane.execEnd(s.session, { exitCode: 0 }, 'alice');
    expect(ended).toMatchObject({ state: 'ended', exitCode: 0 });
    const audit = store.audit.since(0).map((r) => [r.actor, r.action, r.target, r.result]);
    expect(audit).toEqual([
      ['alice', 'exec', ids[0], 'ok'],
      ['alice', 'exec.end', ids[0], 'ok'],
    ]);
    expect(store.audit.since(0)[0]!.detail).toContain('["/bin/sh","-c","echo hi"]');
  });

  it('audits a refused exec as failed and taints nothing', async () => {
    const { store, plane, ids, taints } = await setup();
    await expect(plane.execOpen(ids[2]!, { command: ['sh'] }, 'bob')).rejects.toThrow(ConflictError);
    await expect(plane.execOpen('nope', { command: ['sh'] }, 'bob')).rejects.toThrow(NotFoundError);
    expect(taints).toEqual([]);
    expect(store.audit.since(0).map((r) => [r.action, r.target, r.result])).toEqual([
      ['exec', ids[2], 'failed'],
      ['exec', 'nope', 'failed'],
    ]);
  });
});

describe('KnownStatePlane.verify', () => {
  it('turns verdicts into clean, drifted and unverified, with what kiln does about a taint', async () => {
    const { store, plane, ids, verdicts } = await setup({ action: 'alert' });
    const base = { service: 'web', release: 'r1', digest: D1, full: true, checkedAt: '', process: [] };
    verdicts.push(
      { ...base, id: ids[0]!, ok: true, files: [] },
      {
        ...base,
        id: ids[1]!,
        ok: false,
        files: [{ path: 'etc/evil', change: 'added', detail: 'file not in the image' }],
      },
      { ...base, id: ids[2]!, ok: true, files: [], error: 'no manifest' },
    );
    store.instances.update(ids[1]!, { taint: { reason: 'DriftDetected', message: 'etc/evil' } });
    const result = await plane.verify({});
    expect([result.clean, result.drifted, result.unverified]).toEqual([1, 1, 1]);
    expect(result.instances.map((i) => [i.id, i.verdict, i.action])).toEqual([
      [ids[0], 'clean', undefined],
      [ids[1], 'drifted', 'alert'],
      [ids[2], 'unverified', undefined],
    ]);
    expect(result.instances[1]!.files).toEqual([
      { path: 'etc/evil', change: 'added', detail: 'file not in the image' },
    ]);
  });

  it('refuses an unknown instance or service', async () => {
    const { plane } = await setup();
    await expect(plane.verify({ instance: 'nope' })).rejects.toThrow(NotFoundError);
    await expect(plane.verify({ service: 'nope' })).rejects.toThrow(NotFoundError);
  });
});
