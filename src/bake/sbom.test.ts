import { describe, expect, it } from 'vitest';
import { cycloneDx, debPurl, licensesFromCopyright } from './sbom.js';

describe('licensesFromCopyright', () => {
  it('reads DEP-5 License fields, splitting "or"/"and", unique and sorted', () => {
    const text = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: x

Files: *
Copyright: someone
License: GPL-2+ or Artistic

Files: debian/*
License: GPL-2+

License: GPL-2+
 The full text.
`;
    expect(licensesFromCopyright(text)).toEqual(['Artistic', 'GPL-2+']);
  });

  it('claims nothing for a copyright file that is not machine-readable', () => {
    expect(licensesFromCopyright('This package is under the GPL.\nLicense: whatever\n')).toEqual([]);
  });
});

describe('cycloneDx', () => {
  const sbom = cycloneDx({
    imageName: 'api',
    manifestDigest: `sha256:${'1'.repeat(64)}`,
    created: '2023-11-14T22:13:20.000Z',
    kilnVersion: '0.1.0',
    packages: [
      {
        name: 'zlib1g',
        version: '1:1.2.13.dfsg-1',
        arch: 'amd64',
        sha256: 'a'.repeat(64),
        suite: 'bookworm',
        licenses: ['Zlib'],
        source: 'zlib',
      },
      {
        name: 'libfoo',
        version: '1.0',
        arch: 'all',
        sha256: 'b'.repeat(64),
        suite: 'bookworm-security',
        licenses: ['Custom-1'],
      },
    ],
  }) as {
    specVersion: string;
    serialNumber: string;
    components: { name: string; purl: string; licenses: unknown[] }[];
  };

  it('is CycloneDX 1.6 with a serial number derived from the image', () => {
    expect(sbom.specVersion).toBe('1.6');
    expect(sbom.serialNumber).toMatch(
      /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  it('lists packages sorted, with purls (epoch colon encoded) and SPDX ids where they map', () => {
    expect(sbom.components.map((c) => c.purl)).toEqual([
      'pkg:deb/debian/libfoo@1.0?arch=all',
      'pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64',
    ]);
    expect(sbom.components[1]!.licenses).toEqual([{ license: { id: 'Zlib' } }]);
    expect(sbom.components[0]!.licenses).toEqual([{ license: { name: 'Custom-1' } }]);
  });

  it('makes purls for plain versions', () => {
    expect(debPurl('curl', '7.88.1-10+deb12u5', 'amd64')).toBe(
      'pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64',
    );
  });
});
