/**
 * `kiln audit`, end to end: a service baked from the fixture archive and deployed, an instance
 * tainted by `kiln exec` (kept: `drift.action: alert`), then a security update published in the
 * archive. The report names the running digest, its trusted signer, its SBOM (as `kiln images`
 * sees it) and the package with the update; with the archive gone, that column is unknown with
 * the reason, and the rest of the report stands.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { updatedPackages, startBakeryArchive } from '../support/bakery.js';
import { SERVICE, useFleet } from '../support/fleet.js';
import type { AuditReportJson } from '../../src/cli/audit.js';

const { fleet } = useFleet();

describe('kiln audit', () => {
  it('reports digest, signer, SBOM, security updates and recent taints, and survives the archive being gone', async () => {
    // Given the web image with hello-tool in it, baked and deployed, and one instance exec'd into.
    const f = await fleet({ replicas: 1, drift: { action: 'alert' } }, { bake: false });
    const config = path.join(f.project.dir, 'kiln.yaml');
    const yaml = await readFile(config, 'utf8');
    await writeFile(
      config,
      yaml.replace('packages: [busybox-static]', 'packages: [busybox-static, hello-tool]'),
    );
    await f.project.bake();
    await f.startServer();
    const deployed = await f.kiln(['deploy', SERVICE, '--wait', '--timeout', '60s']);
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
    const api = await f.api();
    const [instance] = await api.instances(SERVICE);
    const exec = await f.kiln(['exec', instance!.id, '--', '/bin/busybox', 'true']);
    expect(exec.code, exec.stderr).toBe(0);
    const images = JSON.parse((await f.kiln(['images', '--json'])).stdout) as {
      name: string;
      digest: string;
      sbom: { digest: string; components: number };
    }[];
    const web = images.find((i) => i.name.startsWith('web'))!;

    // When the archive publishes a security update of hello-tool, and the config points at it,
    const updated = await startBakeryArchive({ packages: updatedPackages() });
    let report: AuditReportJson;
    try {
      const first = (await readFile(config, 'utf8')).match(
        /mirror: \{ url: "([^"]+)", keyring: "([^"]+)" \}/,
      )!;
      await writeFile(
        config,
        (await readFile(config, 'utf8')).replace(first[1]!, updated.url).replace(first[2]!, updated.keyring),
      );
      const json = await f.kiln(['audit', '--json']);
      expect(json.code, json.stderr).toBe(0);
      report = JSON.parse(json.stdout) as AuditReportJson;
      const text = await f.kiln(['audit']);
      expect(text.stdout).toContain('hello-tool 1.0-1 → 1.0-1+deb1u1 (testing-security)');
    } finally {
      await updated.close();
    }

    // Then the report names the running digest, its signer, its SBOM and the update,
    expect(report.services.map((s) => s.service)).toEqual([SERVICE]);
    const [service] = report.services;
    expect(service!.release).toBe('r1');
    expect(service!.images).toHaveLength(1);
    const image = service!.images[0]!;
    expect(image.digest).toBe(web.digest);
    expect(image.instances).toBe(1);
    expect(image.signer).toMatchObject({
      trusted: true,
      source: path.join(f.project.home, 'keys', 'signing.pub'),
    });
    expect(image.sbom).toMatchObject({
      digest: web.sbom.digest,
      components: web.sbom.components,
      subject: web.digest,
    });
    expect(image.sbom!.components).toBeGreaterThanOrEqual(2);
    expect(image.securityUpdates).toEqual({
      status: 'checked',
      packages: [
        { name: 'hello-tool', installed: '1.0-1', available: '1.0-1+deb1u1', suite: 'testing-security' },
      ],
    });
    // and the instance tainted by the exec session.
    expect(service!.tainted).toEqual([
      expect.objectContaining({
        id: instance!.id,
        taint: expect.objectContaining({ reason: 'ExecDetected' }),
      }),
    ]);

    // When the archive cannot be reached, the column is unknown with the reason; the rest stands.
    const offline = await f.kiln(['audit', '--json']);
    expect(offline.code, offline.stderr).toBe(0);
    const without = (JSON.parse(offline.stdout) as AuditReportJson).services[0]!.images[0]!;
    expect(without.securityUpdates.status).toBe('unknown');
    expect(without.securityUpdates).toMatchObject({
      reason: expect.stringContaining('reading the testing archive failed'),
    });
    expect(without.signer?.trusted).toBe(true);
    expect(without.sbom?.digest).toBe(web.sbom.digest);
  }, 180_000);
});
