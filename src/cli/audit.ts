/**
 * `kiln audit [--json]`: for every service, the image digests it runs, who signed each, its SBOM,
 * the packages with a newer security version in the archive, and its instances tainted in the last
 * day. The control plane reports what it knows (`GET /v1/audit/report`); the archive is read here,
 * as `kiln outdated` reads it, from the project's mirror or the machine's apt sources. An archive
 * that cannot be read makes that column `unknown` with the reason, not the report fail.
 */
import { Command } from 'commander';
import type {
  RunningImageJson,
  SbomJson,
  SecurityReportJson,
  ServiceAuditJson,
  TaintedInstanceJson,
} from '../api/index.js';
import { baseSuite, newerVersions, type Archives } from '../bake/index.js';
import { loadFromOptions, printJson } from './common.js';
import { clientFor, shortDigest, shortTime, withConnection, type ConnectionOptions } from './fleet-common.js';
import { archivesFor } from './outdated.js';

/** A package of a running image with a newer version in the archive's security suite. */
export interface SecurityUpdateJson {
  readonly name: string;
  readonly installed: string;
  readonly available: string;
  readonly suite: string;
}

/** The archive column of one image: checked, or unknown and why. */
export type ArchiveCheckJson =
  | { readonly status: 'checked'; readonly packages: readonly SecurityUpdateJson[] }
  | { readonly status: 'unknown'; readonly reason: string };

/** One running image in `kiln audit --json`. */
export interface ImageAuditJson extends Omit<RunningImageJson, 'sbom'> {
  /** The SBOM's reference (the artifact in the store), without its package list. */
  readonly sbom: Omit<SbomJson, 'packages'> | null;
  readonly securityUpdates: ArchiveCheckJson;
}

/** `kiln audit --json`. */
export interface AuditReportJson {
  readonly generatedAt: string;
  readonly taintedSince: string;
  readonly services: readonly {
    readonly service: string;
    readonly release?: string;
    readonly images: readonly ImageAuditJson[];
    readonly tainted: readonly TaintedInstanceJson[];
  }[];
}

export function auditCommand(): Command {
  return withConnection(
    new Command('audit')
      .description(
        "report every service's running digests, signers, SBOMs, packages with security updates, and recent taints",
      )
      .option('--json', 'print JSON (AuditReportJson, docs/security.md)')
      .action(async (opts: ConnectionOptions & { json?: boolean }, cmd: Command) => {
        const api = await clientFor(cmd, opts);
        const report = await api.securityReport();
        let archives: Archives | Error;
        try {
          archives = archivesFor(await loadFromOptions(cmd));
        } catch (err) {
          archives = err instanceof Error ? err : new Error(String(err));
        }
        const result = auditReport(report, await checkArchive(report, archives));
        if (opts.json) printJson(result);
        else process.stdout.write(auditText(result));
      }),
  );
}

/**
 * The archive column of every image the report names, by digest: the packages of its SBOM with a
 * newer version in their suite's `-security`; `unknown` with the reason when the image has no SBOM
 * or the archive (or the config naming it) cannot be read.
 */
export async function checkArchive(
  report: SecurityReportJson,
  archives: Archives | Error,
): Promise<Map<string, ArchiveCheckJson>> {
  const out = new Map<string, ArchiveCheckJson>();
  const failed = new Map<string, string>(); // suite → why, so an unreachable archive is tried once
  for (const image of report.services.flatMap((s) => s.images)) {
    if (out.has(image.digest)) continue;
    if (!image.sbom) {
      out.set(image.digest, { status: 'unknown', reason: 'the image has no SBOM to read its packages from' });
      continue;
    }
    if (archives instanceof Error) {
      out.set(image.digest, { status: 'unknown', reason: `no archive to compare with: ${archives.message}` });
      continue;
    }
    const bySuite = new Map<string, { name: string; version: string }[]>();
    for (const p of image.sbom.packages) {
      if (p.suite === '') continue;
      const suite = baseSuite(p.suite);
      bySuite.set(suite, [...(bySuite.get(suite) ?? []), p]);
    }
    const updates: SecurityUpdateJson[] = [];
    const reasons: string[] = [];
    for (const [suite, packages] of [...bySuite].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (failed.has(suite)) {
        reasons.push(failed.get(suite)!);
        continue;
      }
      try {
        for (const o of await newerVersions(image.digest, suite, packages, archives)) {
          if (o.security)
            updates.push({ name: o.name, installed: o.locked, available: o.available, suite: o.suite });
        }
      } catch (err) {
        const why = `reading the ${suite} archive failed: ${err instanceof Error ? err.message : String(err)}`;
        failed.set(suite, why);
        reasons.push(why);
      }
    }
    out.set(
      image.digest,
      reasons.length > 0
        ? { status: 'unknown', reason: reasons.join('; ') }
        : { status: 'checked', packages: updates },
    );
  }
  return out;
}

/** The report as `kiln audit --json` prints it: the plane's, with the archive column, without SBOM package lists. */
export function auditReport(
  report: SecurityReportJson,
  checks: ReadonlyMap<string, ArchiveCheckJson>,
): AuditReportJson {
  return {
    generatedAt: report.generatedAt,
    taintedSince: report.taintedSince,
    services: report.services.map((s: ServiceAuditJson) => ({
      service: s.service,
      ...(s.release !== undefined ? { release: s.release } : {}),
      images: s.images.map((i) => {
        const { sbom, ...rest } = i;
        const ref = sbom === null ? null : (({ packages: _, ...r }) => r)(sbom);
        return {
          ...rest,
          sbom: ref,
          securityUpdates: checks.get(i.digest) ?? { status: 'unknown', reason: 'not checked' },
        };
      }),
      tainted: s.tainted,
    })),
  };
}

/** The report for people: a block per service. */
export function auditText(r: AuditReportJson): string {
  const lines: string[] = [];
  for (const s of r.services) {
    lines.push(`${s.service}${s.release ? `  ${s.release}` : '  (no release)'}`);
    if (s.images.length === 0) lines.push('  runs nothing');
    for (const i of s.images) {
      lines.push(
        `  ${i.digest}  ${i.instances} instance${i.instances === 1 ? '' : 's'} (${i.releases.join(', ') || '-'})`,
      );
      const signer = i.signer
        ? `${shortDigest(i.signer.keyid)} (trusted: ${i.signer.source ?? 'yes'})`
        : i.signerError !== undefined
          ? `unknown: ${i.signerError}`
          : i.signers.length > 0
            ? `NOT TRUSTED: signed by ${i.signers.map((x) => shortDigest(x.keyid)).join(', ')}`
            : 'NONE: the image has no signature';
      lines.push(`    signer:    ${signer}`);
      lines.push(
        `    sbom:      ${i.sbom ? `${i.sbom.digest} (CycloneDX, ${i.sbom.components} components, in ${i.sbom.store})` : 'none attached'}`,
      );
      const u = i.securityUpdates;
      lines.push(
        `    security:  ${
          u.status === 'unknown'
            ? `unknown: ${u.reason}`
            : u.packages.length === 0
              ? 'no package has a newer security version'
              : `${u.packages.length} package${u.packages.length === 1 ? ' has' : 's have'} a newer security version (rebake: kiln bake --update)`
        }`,
      );
      if (u.status === 'checked') {
        for (const p of u.packages)
          lines.push(`               ${p.name} ${p.installed} → ${p.available} (${p.suite})`);
      }
    }
    lines.push(
      s.tainted.length === 0
        ? `  tainted since ${shortTime(r.taintedSince)}: none`
        : `  tainted since ${shortTime(r.taintedSince)}:`,
    );
    for (const t of s.tainted) {
      lines.push(
        `    ${t.id} ${t.release} ${t.state} at ${shortTime(t.taint.at)}: ${t.taint.reason}: ${t.taint.message}`,
      );
    }
  }
  if (r.services.length === 0) lines.push('no service has been deployed');
  return `${lines.join('\n')}\n`;
}
