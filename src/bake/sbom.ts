import { createHash } from 'node:crypto';
import type { Digest } from '../oci/index.js';

/** The media type (and artifact type) of a CycloneDX JSON SBOM. */
export const SBOM_MEDIA_TYPE = 'application/vnd.cyclonedx+json';
/** The CycloneDX version kiln writes. */
export const CYCLONEDX_SPEC_VERSION = '1.6';

/** What the SBOM says about one Debian package. */
export interface SbomPackage {
  readonly name: string;
  readonly version: string;
  readonly arch: string;
  readonly sha256: string;
  readonly suite: string;
  readonly source?: string;
  /** Licence short names from the package's machine-readable copyright file. */
  readonly licenses: readonly string[];
}

/** Debian copyright short names and their SPDX identifiers (DEP-5 §7 and common usage). */
const SPDX_IDS: Readonly<Record<string, string>> = {
  'apache-2.0': 'Apache-2.0',
  artistic: 'Artistic-1.0-Perl',
  'bsd-2-clause': 'BSD-2-Clause',
  'bsd-3-clause': 'BSD-3-Clause',
  'bsd-4-clause': 'BSD-4-Clause',
  expat: 'MIT',
  mit: 'MIT',
  isc: 'ISC',
  'gpl-1+': 'GPL-1.0-or-later',
  'gpl-2': 'GPL-2.0-only',
  'gpl-2+': 'GPL-2.0-or-later',
  'gpl-3': 'GPL-3.0-only',
  'gpl-3+': 'GPL-3.0-or-later',
  'lgpl-2': 'LGPL-2.0-only',
  'lgpl-2+': 'LGPL-2.0-or-later',
  'lgpl-2.1': 'LGPL-2.1-only',
  'lgpl-2.1+': 'LGPL-2.1-or-later',
  'lgpl-3': 'LGPL-3.0-only',
  'lgpl-3+': 'LGPL-3.0-or-later',
  'mpl-1.1': 'MPL-1.1',
  'mpl-2.0': 'MPL-2.0',
  zlib: 'Zlib',
  'public-domain': '',
  openssl: 'OpenSSL',
  unicode: 'Unicode-DFS-2016',
  'cc0-1.0': 'CC0-1.0',
  'gfdl-1.3+': 'GFDL-1.3-or-later',
};

/**
 * Licence short names from a DEP-5 machine-readable copyright file, sorted and unique. A file
 * that is not machine-readable yields none (the licence is then unknown, not guessed).
 */
export function licensesFromCopyright(text: string): string[] {
  if (!/^Format:\s*\S+/m.test(text)) return [];
  const names = new Set<string>();
  for (const m of text.matchAll(/^License:[ \t]*([^\n]+)$/gm)) {
    for (const part of m[1]!.split(/\s+(?:or|and)\s+|\s*\|\s*/i)) {
      const name = part.trim().replace(/,$/, '');
      if (name && !/\s/.test(name)) names.add(name);
    }
  }
  return [...names].sort();
}

/** A package-URL for a Debian package, as CycloneDX and scanners expect it. */
export function debPurl(name: string, version: string, arch: string): string {
  return `pkg:deb/debian/${encodeURIComponent(name)}@${encodeURIComponent(version)}?arch=${encodeURIComponent(arch)}`;
}

function licenseChoice(short: string): { license: { id: string } | { name: string } } {
  const id = SPDX_IDS[short.toLowerCase()];
  return id ? { license: { id } } : { license: { name: short } };
}

/** A UUID (v4 layout) derived from a digest, so the same image always gets the same serial number. */
function uuidFrom(digest: string): string {
  const h = createHash('sha256').update(digest).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * A CycloneDX 1.6 SBOM for an image: the image as the subject component, every Debian package as a
 * component with its purl, licences where the package declares them, and the .deb's SHA-256.
 * Deterministic: the same image and packages give the same bytes.
 */
export function cycloneDx(options: {
  readonly imageName: string;
  readonly manifestDigest: Digest;
  readonly created: string;
  readonly kilnVersion: string;
  readonly packages: readonly SbomPackage[];
}): object {
  const { imageName, manifestDigest, created, kilnVersion } = options;
  const packages = [...options.packages].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.6.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: CYCLONEDX_SPEC_VERSION,
    serialNumber: `urn:uuid:${uuidFrom(manifestDigest)}`,
    version: 1,
    metadata: {
      timestamp: created,
      tools: { components: [{ type: 'application', name: 'kiln', version: kilnVersion }] },
      component: {
        type: 'container',
        'bom-ref': manifestDigest,
        name: imageName,
        version: manifestDigest,
        hashes: [{ alg: 'SHA-256', content: manifestDigest.slice('sha256:'.length) }],
      },
    },
    components: packages.map((p) => {
      const purl = debPurl(p.name, p.version, p.arch);
      return {
        type: 'library',
        'bom-ref': purl,
        name: p.name,
        version: p.version,
        purl,
        ...(p.licenses.length ? { licenses: p.licenses.map(licenseChoice) } : {}),
        hashes: [{ alg: 'SHA-256', content: p.sha256 }],
        properties: [
          { name: 'kiln:debian:suite', value: p.suite },
          ...(p.source ? [{ name: 'kiln:debian:source', value: p.source }] : []),
        ],
      };
    }),
    dependencies: [
      { ref: manifestDigest, dependsOn: packages.map((p) => debPurl(p.name, p.version, p.arch)) },
    ],
  };
}
